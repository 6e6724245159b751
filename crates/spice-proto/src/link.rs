//! Link-stage wire structures (`SpiceLinkHeader`, `SpiceLinkMess`, `SpiceLinkReply`).

use crate::caps::Caps;
use crate::consts::{LinkError, MAGIC, TICKET_PUBKEY_BYTES, VERSION_MAJOR, VERSION_MINOR};
use crate::error::DecodeError;
use crate::wire::{Reader, Writer};

/// `SpiceLinkHeader`, which starts the link stage in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkHeader {
    /// Must be [`MAGIC`].
    pub magic: u32,
    /// Protocol major version; 2 today.
    pub major_version: u32,
    /// Protocol minor version.
    pub minor_version: u32,
    /// Size of the link message that follows.
    pub size: u32,
}

impl LinkHeader {
    /// Encoded size: 4 /* magic */ + 4 /* major */ + 4 /* minor */ + 4 /* size */.
    pub const SIZE: usize = 16;

    /// Reads the header.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            magic: r.u32("link header magic")?,
            major_version: r.u32("link header major version")?,
            minor_version: r.u32("link header minor version")?,
            size: r.u32("link header size")?,
        })
    }

    /// Writes the header.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.magic)
            .u32(self.major_version)
            .u32(self.minor_version)
            .u32(self.size);
    }

    /// A header for a server message of `size` bytes.
    pub fn server(size: u32) -> Self {
        Self {
            magic: MAGIC,
            major_version: VERSION_MAJOR,
            minor_version: VERSION_MINOR,
            size,
        }
    }
}

/// `SpiceLinkMess`: which channel the client wants, and its capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMess {
    /// 0 for a new session's main channel, otherwise the session id from `MAIN_INIT`.
    pub connection_id: u32,
    /// Raw channel type (`SPICE_CHANNEL_*`).
    pub channel_type: u8,
    /// Channel instance id.
    pub channel_id: u8,
    /// Common capabilities of the client.
    pub common_caps: Caps,
    /// Channel capabilities of the client.
    pub channel_caps: Caps,
}

impl LinkMess {
    /// Fixed part: 4 /* connection_id */ + 1 /* channel_type */ + 1 /* channel_id */
    /// + 4 /* num_common_caps */ + 4 /* num_channel_caps */ + 4 /* caps_offset */.
    pub const FIXED_SIZE: usize = 18;

    /// Reads a link message occupying all of `body`, with the checks of the C server:
    /// bounded capability counts, capability words inside the message, and an offset
    /// that does not point into the fixed part.
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let connection_id = r.u32("link connection id")?;
        let channel_type = r.u8("link channel type")?;
        let channel_id = r.u8("link channel id")?;
        let num_common = r.u32("link common caps count")?;
        let num_channel = r.u32("link channel caps count")?;
        let caps_offset = r.u32("link caps offset")?;
        for (what, count) in [
            ("link common caps count", num_common),
            ("link channel caps count", num_channel),
        ] {
            if count > crate::caps::MAX_CAP_WORDS {
                return Err(DecodeError::TooLarge {
                    what,
                    value: count.into(),
                    limit: crate::caps::MAX_CAP_WORDS.into(),
                });
            }
        }
        let total_words = u64::from(num_common) + u64::from(num_channel);
        let (common_caps, channel_caps) = if total_words == 0 {
            (Caps::new(), Caps::new())
        } else {
            let offset = caps_offset as usize;
            if offset < Self::FIXED_SIZE || offset > body.len() {
                return Err(DecodeError::Invalid {
                    what: "link caps offset",
                    value: caps_offset.into(),
                });
            }
            let mut caps = Reader::new(&body[offset..]);
            if (caps.remaining() as u64) < total_words * 4 {
                return Err(DecodeError::Truncated {
                    what: "link capabilities",
                    needed: (total_words * 4) as usize,
                    available: caps.remaining(),
                });
            }
            (
                Caps::decode(&mut caps, num_common, "link common caps")?,
                Caps::decode(&mut caps, num_channel, "link channel caps")?,
            )
        };
        Ok(Self {
            connection_id,
            channel_type,
            channel_id,
            common_caps,
            channel_caps,
        })
    }

    /// Writes the message as a client would, with the caps right after the fixed part.
    pub fn encode(&self, w: &mut Writer<'_>) {
        w.u32(self.connection_id)
            .u8(self.channel_type)
            .u8(self.channel_id)
            .u32(self.common_caps.word_count())
            .u32(self.channel_caps.word_count())
            .u32(Self::FIXED_SIZE as u32);
        for &word in self.common_caps.words().iter().chain(self.channel_caps.words()) {
            w.u32(word);
        }
    }

    /// Encoded size of this message.
    pub fn encoded_len(&self) -> usize {
        Self::FIXED_SIZE + 4 * (self.common_caps.words().len() + self.channel_caps.words().len())
    }
}

/// `SpiceLinkReply`, preceded on the wire by its own [`LinkHeader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReply {
    /// [`LinkError::Ok`] or the reason the link is refused.
    pub error: LinkError,
    /// DER SubjectPublicKeyInfo of the ticket key (zeros when refusing).
    pub pub_key: [u8; TICKET_PUBKEY_BYTES],
    /// Common capabilities of the server.
    pub common_caps: Caps,
    /// Channel capabilities of the server.
    pub channel_caps: Caps,
}

impl LinkReply {
    /// Fixed part: 4 /* error */ + 162 /* pub_key */ + 4 /* num_common_caps */
    /// + 4 /* num_channel_caps */ + 4 /* caps_offset */.
    pub const FIXED_SIZE: usize = 4 + TICKET_PUBKEY_BYTES + 12;

    /// A reply that only carries an error, as the C server sends it.
    pub fn refusal(error: LinkError) -> Self {
        Self {
            error,
            pub_key: [0; TICKET_PUBKEY_BYTES],
            common_caps: Caps::new(),
            channel_caps: Caps::new(),
        }
    }

    /// Writes the link header and the reply.
    pub fn encode_with_header(&self, out: &mut Vec<u8>) {
        let caps_words = self.common_caps.words().len() + self.channel_caps.words().len();
        let size = Self::FIXED_SIZE + 4 * caps_words;
        let mut w = Writer::new(out);
        LinkHeader::server(size as u32).encode(&mut w);
        w.u32(self.error.code())
            .bytes(&self.pub_key)
            .u32(self.common_caps.word_count())
            .u32(self.channel_caps.word_count())
            .u32(Self::FIXED_SIZE as u32);
        for &word in self.common_caps.words().iter().chain(self.channel_caps.words()) {
            w.u32(word);
        }
    }

    /// Reads a reply body (after its header), as a client would.
    pub fn decode(body: &[u8]) -> Result<(u32, Vec<u8>, Caps, Caps), DecodeError> {
        let mut r = Reader::new(body);
        let error = r.u32("link reply error")?;
        let key = r.take(TICKET_PUBKEY_BYTES, "link reply public key")?.to_vec();
        let num_common = r.u32("link reply common caps count")?;
        let num_channel = r.u32("link reply channel caps count")?;
        let offset = r.u32("link reply caps offset")? as usize;
        let mut caps = Reader::new(body.get(offset..).unwrap_or_default());
        let common = Caps::decode(&mut caps, num_common, "link reply common caps")?;
        let channel = Caps::decode(&mut caps, num_channel, "link reply channel caps")?;
        Ok((error, key, common, channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_mess_round_trips() {
        let mess = LinkMess {
            connection_id: 77,
            channel_type: 2,
            channel_id: 0,
            common_caps: Caps::with(&[0, 1, 3]),
            channel_caps: Caps::with(&[1, 5]),
        };
        let mut v = Vec::new();
        mess.encode(&mut Writer::new(&mut v));
        assert_eq!(v.len(), mess.encoded_len());
        assert_eq!(LinkMess::decode(&v).unwrap(), mess);
    }

    #[test]
    fn link_mess_rejects_caps_past_the_end() {
        let mut v = Vec::new();
        Writer::new(&mut v)
            .u32(0)
            .u8(1)
            .u8(0)
            .u32(2)
            .u32(0)
            .u32(18)
            .u32(0xB);
        assert!(matches!(LinkMess::decode(&v), Err(DecodeError::Truncated { .. })));
    }

    #[test]
    fn link_mess_rejects_offset_inside_fixed_part() {
        let mut v = Vec::new();
        Writer::new(&mut v)
            .u32(0)
            .u8(1)
            .u8(0)
            .u32(1)
            .u32(0)
            .u32(4)
            .u32(0xB);
        assert!(matches!(LinkMess::decode(&v), Err(DecodeError::Invalid { .. })));
    }

    #[test]
    fn link_mess_rejects_huge_cap_counts_without_overflow() {
        let mut v = Vec::new();
        Writer::new(&mut v)
            .u32(0)
            .u8(1)
            .u8(0)
            .u32(u32::MAX)
            .u32(u32::MAX)
            .u32(18);
        assert!(matches!(LinkMess::decode(&v), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn link_reply_layout_matches_spice_h() {
        let mut out = Vec::new();
        let reply = LinkReply {
            error: LinkError::Ok,
            pub_key: [7; TICKET_PUBKEY_BYTES],
            common_caps: Caps::with(&[0, 1, 3]),
            channel_caps: Caps::with(&[1]),
        };
        reply.encode_with_header(&mut out);
        assert_eq!(LinkReply::FIXED_SIZE, 178);
        assert_eq!(out.len(), 16 + 178 + 8);
        assert_eq!(&out[0..4], b"REDQ");
        assert_eq!(u32::from_le_bytes(out[12..16].try_into().unwrap()), 186);
        // caps_offset points just past the fixed part.
        assert_eq!(
            u32::from_le_bytes(out[16 + 174..16 + 178].try_into().unwrap()),
            178
        );
        let (error, key, common, channel) = LinkReply::decode(&out[16..]).unwrap();
        assert_eq!(
            (error, key[0], common.words(), channel.words()),
            (0, 7, &[0xB][..], &[2][..])
        );
    }
}
