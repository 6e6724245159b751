use super::*;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

/// A frame of a moving scene: a gradient, and a square that moves with `n`.
fn frame(n: u32) -> Vec<u8> {
    frame_of(WIDTH, HEIGHT, n)
}

/// [`frame`] at any size: the gradient spans the picture.
fn frame_of(width: u32, height: u32, n: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let inside = (x + 400 - n * 6) % 400 < 60 && (60..140).contains(&y);
            let (b, g, r) = if inside {
                (40, 200, 240)
            } else {
                (
                    (x * 255 / width) as u8,
                    (y * 255 / height) as u8,
                    ((x + y + n) % 256) as u8,
                )
            };
            pixels.extend_from_slice(&[b, g, r, 0]);
        }
    }
    pixels
}

/// A video-like picture that moves with `n`: smooth saturated colour
/// fields with a little sensor grain, no sharp edges.
fn smooth_frame(n: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((WIDTH * HEIGHT * 4) as usize);
    for y in 0..HEIGHT {
        for x in 0..WIDTH {
            let wave = (f64::from(x + 3 * n) / 23.0).sin() * (f64::from(y) / 31.0).cos();
            let grain = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ n.wrapping_mul(31)) % 9;
            let channel = |v: f64| (v + f64::from(grain) - 4.0).clamp(0.0, 255.0) as u8;
            pixels.extend_from_slice(&[
                channel(f64::from(x * 255 / WIDTH)),
                channel(f64::from(255 - y * 255 / HEIGHT)),
                channel(128.0 + 120.0 * wave),
                0,
            ]);
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

/// The pipeline `description`, with its `appsrc` named `src` and its
/// `appsink` named `sink`.
fn test_pipeline(description: &str) -> (gst::Pipeline, gst_app::AppSrc, gst_app::AppSink) {
    let pipeline = gst::parse::launch(description)
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
    (pipeline, src, sink)
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
    let (pipeline, src, sink) = test_pipeline(&description);
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
    encode_of(codec, WIDTH, HEIGHT, bit_rate, count)
}

/// [`encode`] at any size.
fn encode_of(codec: VideoCodec, width: u32, height: u32, bit_rate: u64, count: u32) -> Vec<Vec<u8>> {
    let mut encoder = VideoEncoder::new(codec, width, height, bit_rate).unwrap();
    assert_eq!(encoder.codec(), codec);
    let mut out = Vec::new();
    for n in 0..count {
        let frames = encoder
            .encode(
                &frame_of(width, height, n),
                width as usize * 4,
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

/// Mean PSNR of the decoded `codec` stream of [`frame_of`] at `width` x
/// `height`, leaving out the first frames (the rate control settling).
fn decoded_psnr(codec: VideoCodec, width: u32, height: u32) -> f64 {
    let frames = encode_of(codec, width, height, 3_000_000, 20);
    psnr_of_decoded(codec, &frames, |n| frame_of(width, height, n))
}

/// Mean PSNR of `frames` decoded against `source(n)`, the first five left
/// out.
fn psnr_of_decoded(codec: VideoCodec, frames: &[Vec<u8>], source: impl Fn(u32) -> Vec<u8>) -> f64 {
    let decoded = decode(codec, frames);
    assert_eq!(decoded.len(), frames.len(), "{codec:?}: every frame decodes");
    let scores: Vec<f64> = decoded
        .iter()
        .enumerate()
        .skip(5)
        .map(|(n, picture)| spice_codec::quality::psnr_rgb32(&source(n as u32), picture))
        .collect();
    scores.iter().sum::<f64>() / scores.len() as f64
}

/// One picture of `caps` through `appsrc name=src ! {elements} ! appsink
/// name=sink`.
fn convert_once(elements: &str, caps: gst::Caps, picture: Vec<u8>) -> Vec<u8> {
    init().unwrap();
    let description = format!("appsrc name=src format=time ! {elements} ! appsink name=sink sync=false");
    let (pipeline, src, sink) = test_pipeline(&description);
    src.set_caps(Some(&caps));
    pipeline.set_state(gst::State::Playing).unwrap();
    src.push_buffer(gst::Buffer::from_slice(picture)).unwrap();
    let out = pull(&sink, gst::ClockTime::from_seconds(2)).expect("a converted picture");
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

#[test]
fn our_conversion_comes_back_closer_than_gstreamers_own() {
    // The client turns I420 back into BGRx with `videoconvert`. What it
    // shows of our I420 must be closer to the source than what it would
    // show of `videoconvert`'s own I420 (the C server's pipeline).
    init().unwrap();
    let source = smooth_frame(7);
    let raw_caps = |format: &str| {
        gst::Caps::builder("video/x-raw")
            .field("format", format)
            .field("width", WIDTH as i32)
            .field("height", HEIGHT as i32)
            .field("framerate", gst::Fraction::new(30, 1))
            .build()
    };
    let to_bgrx = "videoconvert ! video/x-raw,format=BGRx";
    // GStreamer both ways: BGRx -> I420 -> BGRx.
    let theirs = convert_once(
        &format!("videoconvert ! video/x-raw,format=I420 ! {to_bgrx}"),
        raw_caps("BGRx"),
        source.clone(),
    );
    let (matrix, siting) = yuv::default_for_height(HEIGHT);
    let mut i420 = vec![0; I420Layout::new(WIDTH, HEIGHT).size];
    let image = spice_codec::ImageRef {
        width: WIDTH,
        height: HEIGHT,
        stride: WIDTH as usize * 4,
        data: &source,
    };
    yuv::bgrx_to_i420(&image, matrix, siting, &mut i420).unwrap();
    let ours = convert_once(to_bgrx, raw_caps("I420"), i420);
    let (ours, theirs) = (
        spice_codec::quality::psnr_rgb32(&source, &ours),
        spice_codec::quality::psnr_rgb32(&source, &theirs),
    );
    assert!(
        ours > theirs + 1.0,
        "ours {ours:.2} dB, videoconvert's {theirs:.2} dB"
    );
}

#[test]
fn tall_streams_use_the_matrix_the_client_assumes() {
    // Above 576 rows the client takes a VP8 stream for BT.709; converted
    // with BT.601 its saturated colours shift by several levels (27.3 dB
    // against 32.3 at 96x600 when tried). H.264 says its matrix in the
    // stream.
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        for (width, height) in [(96, 240), (96, 600)] {
            let psnr = decoded_psnr(codec, width, height);
            assert!(psnr > 30.5, "{codec:?} {width}x{height}: {psnr:.2} dB");
        }
    }
}

#[test]
fn widths_that_are_not_a_multiple_of_four_keep_their_rows() {
    // GStreamer pads I420 rows to four bytes: a width of 322 has padded
    // luma and chroma rows, which a wrong layout would shear.
    for codec in [VideoCodec::Vp8, VideoCodec::H264] {
        let psnr = decoded_psnr(codec, 322, 240);
        assert!(psnr > 30.5, "{codec:?}: {psnr:.2} dB");
    }
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
