//! The server's mirror of one client's pixmap cache, keyed by content.
//!
//! A framebuffer host hands the server pixels, not images with identities
//! (QEMU's simple display and our [`DisplayHandle`](super::DisplayHandle)
//! both do), so the C server's cache, keyed by the ids QXL guests give their
//! images, never hits for them. This cache keys images by a 128-bit hash of
//! their size and pixels instead: a window shown again, a tab switched back
//! to, a toggling widget or a dialog that reappears goes out as a
//! `FROM_CACHE` reference of a few bytes instead of being encoded again.
//!
//! The client keeps every image sent with `CACHE_ME` until the server tells it
//! to drop it (`INVAL_LIST`), within the size (in pixels) it offered in
//! DISPLAY_INIT. This mirror accounts for that size, evicts the least
//! recently used images when a new one needs room, and returns their ids so
//! the channel can tell the client. Ids are the channel's own image ids,
//! never reused, so an eviction racing with a reference is impossible.
//!
//! Sans-IO and bounded: the number of entries is at most the client's size
//! divided by [`MIN_CACHED_PIXELS`], and an image takes at most a quarter of
//! the cache.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

/// Smaller images are not cached: encoding them costs about as much as
/// hashing, and the reference would save little.
pub(crate) const MIN_CACHED_PIXELS: u64 = 1024;

/// Largest client cache this mirror honours, in pixels (the client may
/// offer any `i64`): 64 Mpixels, 256 MiB on the client.
const MAX_CACHE_PIXELS: u64 = 64 << 20;

/// Photographic images remembered (by key only) to admit them on their second
/// showing.
const SEEN_PHOTOS: usize = 1024;

/// What the server remembers of one cached image.
#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    pixels: u64,
    /// Position in the LRU order (larger = used more recently).
    stamp: u64,
}

/// The server-side mirror of a client's pixmap cache.
#[derive(Debug, Default)]
pub(crate) struct PixmapCache {
    capacity: u64,
    used: u64,
    entries: HashMap<u128, Entry>,
    /// stamp → key, oldest first.
    lru: BTreeMap<u64, u128>,
    next_stamp: u64,
    hits: u64,
    /// Keys of photographic images shown once, oldest first.
    seen_photos: VecDeque<u128>,
    seen_photo_set: HashSet<u128>,
}

impl PixmapCache {
    /// A mirror of a client cache of `capacity` pixels (DISPLAY_INIT's
    /// `pixmap_cache_size`; 0 or less disables caching).
    pub(crate) fn new(capacity: i64) -> Self {
        Self {
            capacity: u64::try_from(capacity).unwrap_or(0).min(MAX_CACHE_PIXELS),
            ..Self::default()
        }
    }

    /// The client cache's size in pixels, as DISPLAY_INIT gave it.
    pub(crate) fn capacity(&self) -> i64 {
        i64::try_from(self.capacity).unwrap_or(i64::MAX)
    }

    /// Whether an image of `pixels` pixels is worth looking up and caching.
    pub(crate) fn admits(&self, pixels: u64) -> bool {
        pixels >= MIN_CACHED_PIXELS && pixels <= self.capacity / 4
    }

    /// The id under which the client holds the image with content `key`,
    /// marking it as just used.
    pub(crate) fn lookup(&mut self, key: u128) -> Option<u64> {
        let stamp = self.next_stamp;
        let entry = self.entries.get_mut(&key)?;
        self.lru.remove(&entry.stamp);
        entry.stamp = stamp;
        self.lru.insert(stamp, key);
        self.next_stamp += 1;
        self.hits += 1;
        Some(entry.id)
    }

    /// Records that the client will cache image `id` of `pixels` pixels with
    /// content `key`. Returns the ids the client must drop first to make
    /// room, or `None` (nothing recorded) when the image is not admitted.
    pub(crate) fn insert(&mut self, key: u128, id: u64, pixels: u64) -> Option<Vec<u64>> {
        if !self.admits(pixels) || self.entries.contains_key(&key) {
            return None;
        }
        let mut evicted = Vec::new();
        // Terminates with room: an admitted image takes at most a quarter of
        // the capacity, and an empty cache uses nothing.
        while self.used + pixels > self.capacity {
            let Some((_, oldest)) = self.lru.pop_first() else {
                break;
            };
            if let Some(old) = self.entries.remove(&oldest) {
                self.used -= old.pixels;
                evicted.push(old.id);
            }
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.entries.insert(key, Entry { id, pixels, stamp });
        self.lru.insert(stamp, key);
        self.used += pixels;
        Some(evicted)
    }

    /// Whether a photographic image (QUIC-coded) with content `key` should be
    /// cached: only on its second showing. Video frames and one-off photos,
    /// which never come back, would otherwise fill the client's cache and
    /// push out the UI pictures that do; a photo that does come back (a
    /// slideshow's loop, a wallpaper) is cached then.
    pub(crate) fn admits_photo(&mut self, key: u128) -> bool {
        if self.seen_photo_set.contains(&key) {
            return true;
        }
        if self.seen_photos.len() == SEEN_PHOTOS {
            if let Some(old) = self.seen_photos.pop_front() {
                self.seen_photo_set.remove(&old);
            }
        }
        self.seen_photos.push_back(key);
        self.seen_photo_set.insert(key);
        false
    }

    /// Pixels the client holds for this cache.
    pub(crate) fn used(&self) -> u64 {
        self.used
    }

    /// Images the client holds for this cache.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Lookups that hit so far.
    pub(crate) fn hits(&self) -> u64 {
        self.hits
    }
}

/// A 128-bit hash of a `width × height` image of packed pixels, good enough
/// that two different images never share a key in practice (the key stands in
/// for the pixels). Two independent 64-bit multiply-rotate lanes over 8-byte
/// words, finished with a strong mixer: several GB/s, far below the cost of
/// encoding. Not keyed: a guest that crafted a collision would only garble its
/// own screen, which it can do anyway.
pub(crate) fn content_key(width: u32, height: u32, pixels: &[u8]) -> u128 {
    const K1: u64 = 0x9E37_79B9_7F4A_7C15;
    const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const K3: u64 = 0x1656_67B1_9E37_79F9;
    const K4: u64 = 0xD6E8_FEB8_6659_FD93;
    let seed = (u64::from(width) << 32 | u64::from(height)) ^ pixels.len() as u64;
    let (mut a, mut b, mut c, mut d) = (seed ^ K1, seed ^ K2, seed.rotate_left(17) ^ K3, !seed ^ K4);
    let mut chunks = pixels.chunks_exact(16);
    for chunk in &mut chunks {
        let lo = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(chunk[8..].try_into().unwrap_or_default());
        a = (a ^ lo).wrapping_mul(K1).rotate_left(31);
        b = (b ^ hi).wrapping_mul(K2).rotate_left(29);
        c = (c ^ lo.rotate_left(23)).wrapping_mul(K3).rotate_left(27);
        d = (d ^ hi.rotate_left(41)).wrapping_mul(K4).rotate_left(33);
    }
    for (i, byte) in chunks.remainder().iter().enumerate() {
        a = (a ^ u64::from(*byte) << (i % 8 * 8)).wrapping_mul(K1);
        c = (c ^ u64::from(*byte)).wrapping_mul(K3);
    }
    let hi = mix(a ^ mix(b ^ K3)) ^ d;
    let lo = mix(c ^ mix(d ^ K1)) ^ b;
    u128::from(mix(hi)) << 64 | u128::from(mix(lo ^ hi))
}

/// The 64-bit finaliser of MurmurHash3: every input bit affects every output bit.
pub(super) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x = x.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_after_insert_and_misses_for_other_content() {
        let mut cache = PixmapCache::new(1 << 20);
        let a = content_key(64, 32, &[7; 64 * 32 * 4]);
        let b = content_key(64, 32, &[8; 64 * 32 * 4]);
        assert_ne!(a, b);
        assert_eq!(cache.lookup(a), None);
        assert_eq!(cache.insert(a, 10, 2048), Some(vec![]));
        assert_eq!(cache.lookup(a), Some(10));
        assert_eq!(cache.lookup(b), None);
        assert_eq!(cache.insert(a, 11, 2048), None, "already cached");
        assert_eq!((cache.len(), cache.used(), cache.hits()), (1, 2048, 1));
    }

    #[test]
    fn least_recently_used_images_make_room() {
        let mut cache = PixmapCache::new(4 * 4096);
        for id in 0..4u64 {
            assert_eq!(cache.insert(u128::from(id), id, 4096), Some(vec![]));
        }
        // Image 0 is used again, so 1 is now the oldest.
        assert_eq!(cache.lookup(0), Some(0));
        assert_eq!(cache.insert(100, 100, 4096), Some(vec![1]));
        assert_eq!(cache.insert(101, 101, 4096), Some(vec![2]));
        assert_eq!(cache.lookup(1), None);
        assert_eq!(cache.lookup(0), Some(0));
        assert_eq!(cache.used(), 4 * 4096);
        // Making room for a larger image can take several.
        let mut small = PixmapCache::new(8192);
        small.insert(1, 1, 1024);
        small.insert(2, 2, 1024);
        small.insert(3, 3, 2048);
        assert_eq!(small.insert(4, 4, 2048), Some(vec![]));
        assert_eq!(small.insert(5, 5, 2048), Some(vec![]), "exactly full");
        assert_eq!(small.insert(6, 6, 2048), Some(vec![1, 2]));
        assert!(small.used() <= 8192);
    }

    #[test]
    fn photos_are_admitted_on_their_second_showing() {
        let mut cache = PixmapCache::new(1 << 20);
        assert!(!cache.admits_photo(7));
        assert!(!cache.admits_photo(8));
        assert!(cache.admits_photo(7));
        // A stream of new frames forgets the oldest keys.
        for key in 100..100 + SEEN_PHOTOS as u128 {
            assert!(!cache.admits_photo(key));
        }
        assert!(!cache.admits_photo(8), "forgotten");
        assert!(cache.seen_photos.len() <= SEEN_PHOTOS);
        assert_eq!(cache.seen_photos.len(), cache.seen_photo_set.len());
    }

    #[test]
    fn tiny_huge_and_disabled_are_not_admitted() {
        let mut cache = PixmapCache::new(1 << 16);
        assert!(!cache.admits(MIN_CACHED_PIXELS - 1));
        assert!(cache.admits(MIN_CACHED_PIXELS));
        assert!(!cache.admits((1 << 14) + 1), "over a quarter of the cache");
        assert_eq!(cache.insert(1, 1, 1 << 15), None);
        let mut off = PixmapCache::new(-5);
        assert!(!off.admits(4096));
        assert_eq!(off.insert(1, 1, 4096), None);
        assert_eq!(PixmapCache::new(i64::MAX).capacity, MAX_CACHE_PIXELS);
    }

    #[test]
    fn keys_depend_on_every_pixel_and_the_shape() {
        let pixels: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
        let base = content_key(32, 32, &pixels);
        assert_eq!(base, content_key(32, 32, &pixels));
        assert_ne!(base, content_key(64, 16, &pixels), "same bytes, other shape");
        let mut seen = std::collections::HashSet::new();
        seen.insert(base);
        for i in 0..pixels.len() {
            let mut flipped = pixels.clone();
            flipped[i] ^= 1;
            assert!(seen.insert(content_key(32, 32, &flipped)), "flip at {i} collides");
        }
        let odd = [1u8, 2, 3, 4, 5];
        assert_ne!(content_key(1, 1, &odd), content_key(1, 1, &odd[..4]));
    }
}
