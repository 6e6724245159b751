use super::*;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

/// A frame of a moving scene: a gradient, and a square that moves with `n`.
fn frame(n: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((WIDTH * HEIGHT * 4) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let inside = (x + 400 - n * 6) % 400 < 60 && (60..140).contains(&y);
            let (b, g, r) = if inside {
                (40, 200, 240)
            } else {
                (
                    (x * 255 / WIDTH) as u8,
                    (y * 255 / HEIGHT) as u8,
                    ((x + y + n) % 256) as u8,
                )
            };
            pixels.extend_from_slice(&[b, g, r, 0]);
        }
    }
    pixels
}

/// The next decoded picture, if one comes within `wait`.
fn pull(sink: &gst_app::AppSink, wait: gst::ClockTime) -> Option<Vec<u8>> {
    let sample = sink.try_pull_sample(wait)?;
    let map = sample.buffer()?.map_readable().ok()?;
    Some(map.as_slice().to_vec())
}

/// Decodes `frames` with GStreamer's own decoder for `codec`, to BGRx.
fn decode(codec: VideoCodec, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let (caps, decoder) = match codec {
        VideoCodec::Vp8 => ("video/x-vp8", "vp8dec"),
        VideoCodec::Vp9 => ("video/x-vp9", "vp9dec"),
        VideoCodec::H264 => (
            "video/x-h264,stream-format=byte-stream,alignment=au",
            "h264parse ! avdec_h264",
        ),
    };
    let description = format!(
        "appsrc name=src format=time caps={caps} ! {decoder} ! videoconvert ! \
         video/x-raw,format=BGRx ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut out = Vec::new();
    for (i, data) in frames.iter().enumerate() {
        let mut buffer = gst::Buffer::from_slice(data.clone());
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(i as u64 * 33));
        src.push_buffer(buffer).unwrap();
        // Decoders may hold a frame or two: what is ready now, and the
        // rest after the end of the stream.
        out.extend(pull(&sink, gst::ClockTime::from_mseconds(200)));
    }
    src.end_of_stream().unwrap();
    while let Some(picture) = pull(&sink, gst::ClockTime::from_seconds(2)) {
        out.push(picture);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

/// Encodes `count` frames at `bit_rate`; the encoded frames, one per input.
fn encode(codec: VideoCodec, bit_rate: u64, count: u32) -> Vec<Vec<u8>> {
    let mut encoder = VideoEncoder::new(codec, WIDTH, HEIGHT, bit_rate).unwrap();
    assert_eq!(encoder.codec(), codec);
    let mut out = Vec::new();
    for n in 0..count {
        let frames = encoder
            .encode(
                &frame(n),
                WIDTH as usize * 4,
                Duration::from_millis(u64::from(n) * 33),
            )
            .unwrap();
        assert_eq!(frames.len(), 1, "{codec:?} frame {n}: one frame in, one out");
        out.extend(frames);
    }
    out
}

fn round_trip(codec: VideoCodec) {
    assert!(
        VideoEncoder::available(codec),
        "{codec:?}: the test machine has the gstreamer plugins"
    );
    let frames = encode(codec, 2_000_000, 30);
    match codec {
        // An uncompressed VP8 frame header: bit 0 clear on a key frame,
        // then the start code 9d 01 2a.
        VideoCodec::Vp8 => {
            assert_eq!(frames[0][0] & 1, 0, "the first frame is a key frame");
            assert_eq!(&frames[0][3..6], &[0x9d, 0x01, 0x2a]);
        }
        // Annex B: a start code, and the access-unit delimiter first.
        VideoCodec::H264 => {
            assert!(frames[0].starts_with(&[0, 0, 0, 1]), "{:02x?}", &frames[0][..8]);
        }
        VideoCodec::Vp9 => {}
    }
    let decoded = decode(codec, &frames);
    assert_eq!(decoded.len(), frames.len(), "every frame decodes");
    for (n, picture) in decoded.iter().enumerate() {
        let quality = spice_codec::quality::psnr_rgb32(&frame(n as u32), picture);
        assert!(quality > 30.0, "{codec:?} frame {n}: {quality:.1} dB");
    }
    // Less than the raw frames by far: the stream is compressed.
    let bytes: usize = frames.iter().map(Vec::len).sum();
    assert!(
        bytes * 20 < (WIDTH * HEIGHT * 4 * 30) as usize,
        "{codec:?}: {bytes} bytes"
    );
}

#[test]
fn vp8_frames_decode_close_to_the_source() {
    round_trip(VideoCodec::Vp8);
}

#[test]
fn h264_frames_decode_close_to_the_source() {
    round_trip(VideoCodec::H264);
}

#[test]
fn a_lower_bit_rate_means_fewer_bytes() {
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let size = |rate| {
            encode(codec, rate, 30)
                .iter()
                .skip(5)
                .map(Vec::len)
                .sum::<usize>()
        };
        let (low, high) = (size(150_000), size(3_000_000));
        assert!(
            low * 2 < high,
            "{codec:?}: {low} bytes at 150 kbit/s, {high} at 3 Mbit/s"
        );
    }
}

#[test]
fn odd_sizes_and_short_frames_are_refused() {
    assert!(matches!(
        VideoEncoder::new(VideoCodec::Vp8, 321, 240, 1_000_000),
        Err(EncodeError::Pipeline { .. })
    ));
    let mut encoder = VideoEncoder::new(VideoCodec::Vp8, WIDTH, HEIGHT, 1_000_000).unwrap();
    let short = vec![0u8; 100];
    assert!(matches!(
        encoder.encode(&short, WIDTH as usize * 4, Duration::ZERO),
        Err(EncodeError::BadFrame { got: 100, .. })
    ));
    // The encoder still works after a refused frame.
    assert_eq!(
        encoder
            .encode(&frame(0), WIDTH as usize * 4, Duration::ZERO)
            .unwrap()
            .len(),
        1
    );
}
