//! Finding scrolled content in damage, so it travels as `COPY_BITS`.
//!
//! A framebuffer host reports a scrolling terminal or web page as a damaged
//! rectangle whose rows mostly moved up or down. The client already has
//! those rows; telling it to copy them (a `COPY_BITS` of a few bytes) and
//! sending only the rows that are really new costs a fraction of encoding
//! the whole rectangle again. The C server only forwards the moves a QXL
//! guest issues itself; QEMU's simple display and every plain framebuffer
//! never issue any.
//!
//! Detection works on one hash per row of the rectangle, before (what the
//! client has) and after (what the host shows): rows whose new content
//! appears exactly once among the old rows vote for the offset between the
//! two, and the longest run of rows that agree with the winning offset is
//! the move. Sans-IO: the caller hashes rows and checks the pixels of the
//! run before using it (a hash is not a proof).

use std::collections::HashMap;

/// Shortest run of moved rows worth a `COPY_BITS`.
pub(crate) const MIN_MOVED_ROWS: usize = 8;

/// Rows `first..first + len` of the new content equal rows
/// `first + offset..first + offset + len` of the old content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VerticalMove {
    /// First destination row.
    pub(crate) first: usize,
    /// Rows moved.
    pub(crate) len: usize,
    /// Source row minus destination row: positive when the content moved up
    /// (it came from further down), negative when it moved down.
    pub(crate) offset: isize,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// One mixing step of the row hashes: `v` folded into `h`.
fn hash_step(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(K).rotate_left(27)
}

/// A 64-bit hash of one row of pixels. Four independent lanes over 32-byte
/// blocks keep the multiplier busy: a framebuffer that scrolls a full
/// screen hashes every row of it.
pub(crate) fn row_hash(row: &[u8]) -> u64 {
    let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let mut lanes = [K, K.rotate_left(16), K.rotate_left(32), K.rotate_left(48)];
    let mut blocks = row.chunks_exact(32);
    for block in &mut blocks {
        for (lane, b) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = hash_step(*lane, word(b));
        }
    }
    let mut h = (row.len() as u64).wrapping_mul(K);
    for lane in lanes {
        h = hash_step(h, lane);
    }
    let mut words = blocks.remainder().chunks_exact(8);
    for w in &mut words {
        h = hash_step(h, word(w));
    }
    for (i, b) in words.remainder().iter().enumerate() {
        h ^= u64::from(*b) << (i * 8);
    }
    super::cache::mix(h)
}

/// Per row hash (or sample): the row holding it, or `None` where several do.
fn rows_by_content(rows: &[u64]) -> HashMap<u64, Option<usize>> {
    let mut by_content: HashMap<u64, Option<usize>> = HashMap::with_capacity(rows.len());
    for (i, h) in rows.iter().enumerate() {
        by_content
            .entry(*h)
            .and_modify(|seen| *seen = None)
            .or_insert(Some(i));
    }
    by_content
}

/// Finds the largest vertical move from `old` rows to `new` rows (one hash
/// per row, same count), if one of at least [`MIN_MOVED_ROWS`] rows explains
/// enough of the change to be worth it.
pub(crate) fn find_vertical_move(old: &[u64], new: &[u64]) -> Option<VerticalMove> {
    let rows = old.len().min(new.len());
    if rows < MIN_MOVED_ROWS * 2 {
        return None;
    }
    // Old rows by content, for contents found once: a blank row matches
    // everywhere and would vote for every offset.
    let where_old = rows_by_content(&old[..rows]);
    let mut votes: HashMap<isize, usize> = HashMap::new();
    let mut changed = 0usize;
    for (i, h) in new.iter().enumerate().take(rows) {
        if *h == old[i] {
            continue;
        }
        changed += 1;
        if let Some(Some(j)) = where_old.get(h) {
            *votes.entry(*j as isize - i as isize).or_default() += 1;
        }
    }
    let (offset, count) = votes
        .into_iter()
        .max_by_key(|&(offset, count)| (count, std::cmp::Reverse(offset.unsigned_abs())))?;
    if count < MIN_MOVED_ROWS / 2 || count * 4 < changed {
        return None;
    }
    // The longest run of rows that the offset explains (blank rows included).
    let mut best: Option<VerticalMove> = None;
    let mut run_start = None;
    let agrees_at = |i: usize| {
        let src = i as isize + offset;
        i < rows && (0..rows as isize).contains(&src) && new[i] == old[src as usize]
    };
    for i in 0..=rows {
        let agrees = agrees_at(i);
        match (agrees, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(first)) => {
                let len = i - first;
                if best.is_none_or(|b| len > b.len) {
                    best = Some(VerticalMove { first, len, offset });
                }
                run_start = None;
            }
            _ => {}
        }
    }
    best.filter(|m| m.len >= MIN_MOVED_ROWS)
}

/// Pixels of a row that [`row_sample`] reads.
const SAMPLED_PIXELS: usize = 8;

/// A cheap stand-in for [`row_hash`]: a few pixels spread across the row.
/// Equal rows have equal samples; rows that differ may not.
pub(crate) fn row_sample(row: &[u8]) -> u64 {
    let pixels = row.len() / 4;
    if pixels == 0 {
        return 0;
    }
    let mut h = 0u64;
    for k in 0..SAMPLED_PIXELS {
        let at = k * (pixels - 1) / (SAMPLED_PIXELS - 1) * 4;
        let px = u32::from_le_bytes(row[at..at + 4].try_into().unwrap_or_default());
        h = hash_step(h, u64::from(px));
    }
    h
}

/// Whether [`find_vertical_move`] could find a move between rows sampled by
/// [`row_sample`]: a move needs `MIN_MOVED_ROWS / 2` new rows that each
/// equal some other old row, so at least as many new samples must appear
/// among the old samples at another row. Only rows that `changed` count, as
/// in [`find_vertical_move`] (an unchanged row's hash equals its old one):
/// the still blank rows beside a video would otherwise match each other.
/// When this says no, hashing whole rows is skipped (video, where every
/// frame changes every row, would otherwise hash each frame twice for
/// nothing).
pub(crate) fn may_find_vertical_move(old: &[u64], new: &[u64], changed: &[bool]) -> bool {
    let rows = old.len().min(new.len()).min(changed.len());
    if rows < MIN_MOVED_ROWS * 2 {
        return false;
    }
    let where_old = rows_by_content(&old[..rows]);
    let mut matching = 0;
    for (i, h) in new.iter().enumerate().take(rows) {
        if !changed[i] {
            continue;
        }
        let elsewhere = match where_old.get(h) {
            Some(Some(j)) => *j != i,
            Some(None) => true,
            None => false,
        };
        if elsewhere {
            matching += 1;
            if matching >= MIN_MOVED_ROWS / 2 {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct row contents, with blank rows (0) every fifth row.
    fn text(rows: usize, seed: u64) -> Vec<u64> {
        (0..rows as u64)
            .map(|i| if i % 5 == 4 { 0 } else { seed * 1000 + i + 1 })
            .collect()
    }

    #[test]
    fn scroll_up_by_a_line_is_found() {
        let old = text(100, 1);
        // Content moved up 12 rows; 12 new rows at the bottom.
        let mut new: Vec<u64> = old[12..].to_vec();
        new.extend(text(12, 2));
        let m = find_vertical_move(&old, &new).expect("a move");
        assert_eq!(
            m,
            VerticalMove {
                first: 0,
                len: 88,
                offset: 12
            }
        );
    }

    #[test]
    fn scroll_down_and_a_static_header_are_handled() {
        let old = text(80, 3);
        // A 10-row header stays; below it content moves down 7 rows.
        let mut new = old[..10].to_vec();
        new.extend(text(7, 4));
        new.extend_from_slice(&old[10..73]);
        let m = find_vertical_move(&old, &new).expect("a move");
        assert_eq!(
            m,
            VerticalMove {
                first: 17,
                len: 63,
                offset: -7
            }
        );
    }

    #[test]
    fn unrelated_content_blank_content_and_short_rects_are_no_move() {
        assert_eq!(find_vertical_move(&text(60, 5), &text(60, 6)), None);
        assert_eq!(find_vertical_move(&[0; 60], &[0; 60]), None, "nothing changed");
        let old = text(10, 7);
        let new: Vec<u64> = old[2..].iter().copied().chain([1, 2]).collect();
        assert_eq!(find_vertical_move(&old, &new), None, "too few rows");
        // A few moved rows in a mostly new picture are not worth it.
        let old = text(100, 8);
        let mut new = text(100, 9);
        new[50..53].copy_from_slice(&old[60..63]);
        assert_eq!(find_vertical_move(&old, &new), None);
    }

    #[test]
    fn row_hashes_see_every_byte() {
        let row: Vec<u8> = (0..203u32).map(|i| (i * 13) as u8).collect();
        let base = row_hash(&row);
        for i in 0..row.len() {
            let mut other = row.clone();
            other[i] ^= 0x10;
            assert_ne!(row_hash(&other), base, "byte {i}");
        }
        assert_ne!(row_hash(&row[..200]), row_hash(&row[..201]));
    }

    #[test]
    fn samples_rule_out_a_move_only_where_hashes_find_none() {
        // Rows of 64 pixels: row r holds r in every pixel, except where noted.
        let row = |v: u32| -> Vec<u8> { (0..64).flat_map(|_| v.to_le_bytes()).collect() };
        let samples = |rows: &[Vec<u8>]| -> Vec<u64> { rows.iter().map(|r| row_sample(r)).collect() };
        let hashes = |rows: &[Vec<u8>]| -> Vec<u64> { rows.iter().map(|r| row_hash(r)).collect() };
        let old: Vec<Vec<u8>> = (0..40).map(row).collect();
        let so = samples(&old);
        let all = vec![true; 40];
        // Scrolled up by 3 rows: samples and hashes both see a move.
        let scrolled: Vec<Vec<u8>> = (3..43).map(row).collect();
        assert!(may_find_vertical_move(&so, &samples(&scrolled), &all));
        assert_eq!(
            find_vertical_move(&hashes(&old), &hashes(&scrolled)).map(|m| m.offset),
            Some(3)
        );
        // Every row new (video): no sample matches, no move.
        let fresh: Vec<Vec<u8>> = (100..140).map(row).collect();
        assert!(!may_find_vertical_move(&so, &samples(&fresh), &all));
        // Rows that differ only between sampled pixels keep samples equal:
        // the filter lets them through to the exact hashes.
        let mut touched = old.clone();
        for r in &mut touched {
            r[4] ^= 0xff;
        }
        assert_eq!(samples(&touched), so);
        // The same rows (no move) never count: a sample must match another row.
        assert!(!may_find_vertical_move(&so, &so, &all));
        // A video above still blank rows: the blank rows match each other,
        // but they did not change, so they do not count.
        let blank = row(7);
        let before: Vec<Vec<u8>> = (0..30).map(row).chain((0..10).map(|_| blank.clone())).collect();
        let after: Vec<Vec<u8>> = (100..130)
            .map(row)
            .chain((0..10).map(|_| blank.clone()))
            .collect();
        let changed: Vec<bool> = (0..40).map(|i| i < 30).collect();
        let (sb, sa) = (samples(&before), samples(&after));
        assert!(!may_find_vertical_move(&sb, &sa, &changed));
        assert!(
            may_find_vertical_move(&sb, &sa, &all),
            "counted, the blank rows would pass"
        );
    }
}
