//! `spice_server_set_video_codecs`' list: `encoder:codec` entries separated
//! by `;`, validated as the C library does, and kept for video streaming.
//!
//! Empty entries are skipped; an entry is `<name>:<name>` with names of
//! ASCII letters, digits and `_`; encoders are `spice` and `gstreamer`,
//! codecs `mjpeg`, `vp8`, `h264` and `vp9` (case-sensitive); `auto` stands
//! for the default list. Bad entries are reported and skipped, and the call
//! fails only when no entry is good (the previous list then stays).

/// Who encodes a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoder {
    /// The server's built-in encoder.
    Spice,
    /// Through GStreamer (the C library's Debian build has it).
    Gstreamer,
}

/// A stream's codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Mjpeg,
    Vp8,
    H264,
    Vp9,
}

/// One entry of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VideoCodec {
    pub(crate) encoder: Encoder,
    pub(crate) codec: Codec,
}

const ENCODERS: [(&str, Encoder); 2] = [("spice", Encoder::Spice), ("gstreamer", Encoder::Gstreamer)];
const CODECS: [(&str, Codec); 4] = [
    ("mjpeg", Codec::Mjpeg),
    ("vp8", Codec::Vp8),
    ("h264", Codec::H264),
    ("vp9", Codec::Vp9),
];

/// What `auto` and a server never configured use: the C library's default
/// list with GStreamer. MJPEG comes first, so streams are MJPEG unless a
/// client prefers another codec (spicy's "Preferred video codec" menu);
/// QEMU 7.2 has no option to set the list.
pub(crate) const DEFAULT: &[VideoCodec] = &[
    VideoCodec {
        encoder: Encoder::Spice,
        codec: Codec::Mjpeg,
    },
    VideoCodec {
        encoder: Encoder::Gstreamer,
        codec: Codec::Mjpeg,
    },
    VideoCodec {
        encoder: Encoder::Gstreamer,
        codec: Codec::H264,
    },
    VideoCodec {
        encoder: Encoder::Gstreamer,
        codec: Codec::Vp8,
    },
    VideoCodec {
        encoder: Encoder::Gstreamer,
        codec: Codec::Vp9,
    },
];

impl VideoCodec {
    /// `encoder:codec`, as `spice_server_get_video_codecs` lists it.
    pub(crate) fn name(&self) -> String {
        let encoder = ENCODERS.iter().find(|e| e.1 == self.encoder).map_or("", |e| e.0);
        let codec = CODECS.iter().find(|c| c.1 == self.codec).map_or("", |c| c.0);
        format!("{encoder}:{codec}")
    }
}

/// What the server streams with: our own MJPEG for `spice:mjpeg` and
/// `gstreamer:mjpeg` alike; VP8, H.264 and VP9 through GStreamer (a
/// `spice:` entry for them names an encoder that does not exist, and is
/// passed over as the C server passes over an encoder it cannot create).
pub(crate) fn for_server(list: &[VideoCodec]) -> spice_server::VideoCodecs {
    let codecs: Vec<spice_server::VideoCodec> = list
        .iter()
        .filter_map(|c| match (c.encoder, c.codec) {
            (_, Codec::Mjpeg) => Some(spice_server::VideoCodec::Mjpeg),
            (Encoder::Gstreamer, Codec::Vp8) => Some(spice_server::VideoCodec::Vp8),
            (Encoder::Gstreamer, Codec::H264) => Some(spice_server::VideoCodec::H264),
            (Encoder::Gstreamer, Codec::Vp9) => Some(spice_server::VideoCodec::Vp9),
            (Encoder::Spice, _) => None,
        })
        .collect();
    if codecs.is_empty() {
        return spice_server::VideoCodecs::new(&[spice_server::VideoCodec::Mjpeg]);
    }
    spice_server::VideoCodecs::new(&codecs)
}

/// The list as `spice_server_get_video_codecs` returns it.
pub(crate) fn to_string(list: &[VideoCodec]) -> String {
    list.iter().map(VideoCodec::name).collect::<Vec<_>>().join(";")
}

/// A parsed list and what was wrong with it, one line per bad entry.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) codecs: Vec<VideoCodec>,
    pub(crate) problems: Vec<String>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses a list; the entries that are good, in order (repeats kept).
pub(crate) fn parse(input: &str) -> Parsed {
    if input == "auto" {
        return Parsed {
            codecs: DEFAULT.to_vec(),
            problems: Vec::new(),
        };
    }
    let mut parsed = Parsed::default();
    for entry in input.split(';').filter(|e| !e.is_empty()) {
        let Some((encoder, codec)) = entry.split_once(':').filter(|(e, c)| is_name(e) && is_name(c)) else {
            parsed
                .problems
                .push(format!("spice: invalid encoder:codec value at '{entry}'"));
            continue;
        };
        let Some(&(_, encoder)) = ENCODERS.iter().find(|e| e.0 == encoder) else {
            parsed
                .problems
                .push(format!("spice: unknown video encoder {encoder}"));
            continue;
        };
        let Some(&(_, codec)) = CODECS.iter().find(|c| c.0 == codec) else {
            parsed
                .problems
                .push(format!("spice: unknown video codec {codec}"));
            continue;
        };
        parsed.codecs.push(VideoCodec { encoder, codec });
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(input: &str) -> String {
        to_string(&parse(input).codecs)
    }

    #[test]
    fn the_server_streams_the_codecs_it_has_encoders_for() {
        let list = |input: &str| {
            for_server(&parse(input).codecs)
                .iter()
                .collect::<Vec<spice_server::VideoCodec>>()
        };
        use spice_server::VideoCodec::{Mjpeg, Vp8, Vp9, H264};
        assert_eq!(list("gstreamer:vp8;spice:mjpeg"), [Vp8, Mjpeg]);
        assert_eq!(
            list("gstreamer:h264;gstreamer:vp9;gstreamer:mjpeg"),
            [H264, Vp9, Mjpeg]
        );
        // No built-in VP8 encoder; only MJPEG is left (and MJPEG when nothing is).
        assert_eq!(list("spice:vp8;gstreamer:mjpeg"), [Mjpeg]);
        assert_eq!(list("spice:vp8"), [Mjpeg]);
    }

    #[test]
    fn good_lists_keep_every_good_entry_in_order() {
        assert_eq!(names("spice:mjpeg"), "spice:mjpeg");
        assert_eq!(names(";;spice:mjpeg;;spice:mjpeg;;;"), "spice:mjpeg;spice:mjpeg");
        assert_eq!(
            names("spice:mjpeg;gstreamer:h264;gstreamer:vp8;gstreamer:vp9"),
            "spice:mjpeg;gstreamer:h264;gstreamer:vp8;gstreamer:vp9"
        );
        assert_eq!(
            names("auto"),
            "spice:mjpeg;gstreamer:mjpeg;gstreamer:h264;gstreamer:vp8;gstreamer:vp9"
        );
        // Bad entries are skipped, good ones kept.
        let p = parse("bogus;spice:mjpeg;spice:theora");
        assert_eq!(to_string(&p.codecs), "spice:mjpeg");
        assert_eq!(p.problems.len(), 2);
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "",
            ";",
            ";;;;",
            ":",
            ";:;",
            "::::",
            "missingcolon",
            ":missing_encoder",
            "missing_value:",
            "spice:",
            ":mjpeg",
            "spice&:mjpeg",
            "spice:mjpeg&",
            "spice:mjpeg:vp8",
            "spice :mjpeg",
            "spice:mjpeg ",
            "Spice:mjpeg",
            "spice:MJPEG",
            "unknown:mjpeg",
            "spice:unknown_codec",
            "AUTO",
        ] {
            assert!(parse(bad).codecs.is_empty(), "{bad:?} accepted");
        }
        assert_eq!(
            parse("unknown:mjpeg").problems,
            ["spice: unknown video encoder unknown"]
        );
        assert_eq!(
            parse("spice:unknown_codec").problems,
            ["spice: unknown video codec unknown_codec"]
        );
        assert_eq!(
            parse("missingcolon").problems,
            ["spice: invalid encoder:codec value at 'missingcolon'"]
        );
        assert!(parse(";;").problems.is_empty(), "empty entries are no error");
    }
}
