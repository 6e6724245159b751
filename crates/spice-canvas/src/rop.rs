//! Raster operations: `SPICE_ROPD_*` descriptors and ternary ROP3 codes.

/// `SPICE_ROPD_*` bits.
pub mod ropd {
    /// Invert the source image.
    pub const INVERS_SRC: u16 = 1 << 0;
    /// Invert the brush.
    pub const INVERS_BRUSH: u16 = 1 << 1;
    /// Invert the destination.
    pub const INVERS_DEST: u16 = 1 << 2;
    /// Put the (inverted) input.
    pub const OP_PUT: u16 = 1 << 3;
    /// Input OR destination.
    pub const OP_OR: u16 = 1 << 4;
    /// Input AND destination.
    pub const OP_AND: u16 = 1 << 5;
    /// Input XOR destination.
    pub const OP_XOR: u16 = 1 << 6;
    /// All bits clear.
    pub const OP_BLACKNESS: u16 = 1 << 7;
    /// All bits set.
    pub const OP_WHITENESS: u16 = 1 << 8;
    /// Destination inverted.
    pub const OP_INVERS: u16 = 1 << 9;
    /// Invert the result.
    pub const INVERS_RES: u16 = 1 << 10;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Put,
    Or,
    And,
    Xor,
    Clear,
    Set,
    Invert,
}

/// A binary raster operation of an input (source image or brush) onto a
/// destination, as a descriptor defines it: `res(op(in', dest'))` where each
/// primed operand may be inverted. The first operation bit present wins, in
/// the order PUT, OR, AND, XOR, BLACKNESS, WHITENESS, INVERS; with none, the
/// input is put as it is (what the C canvas does too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rop {
    op: Op,
    inv_in: u32,
    inv_dest: u32,
    inv_res: u32,
}

impl Rop {
    /// Plain copy of the input.
    pub const COPY: Rop = Rop {
        op: Op::Put,
        inv_in: 0,
        inv_dest: 0,
        inv_res: 0,
    };

    /// The operation of `descriptor`, where `in_invert` is the bit that
    /// inverts this operation's input (`INVERS_SRC` for images,
    /// `INVERS_BRUSH` for brushes) and `dest_invert` the one that inverts
    /// its destination (`INVERS_DEST`, or `INVERS_SRC` when an opaque
    /// draw's brush lands on its source image).
    pub fn from_descriptor(descriptor: u16, in_invert: u16, dest_invert: u16) -> Rop {
        use ropd::*;
        let flag = |bit: u16| if descriptor & bit != 0 { u32::MAX } else { 0 };
        let op = [
            (OP_PUT, Op::Put),
            (OP_OR, Op::Or),
            (OP_AND, Op::And),
            (OP_XOR, Op::Xor),
            (OP_BLACKNESS, Op::Clear),
            (OP_WHITENESS, Op::Set),
            (OP_INVERS, Op::Invert),
        ]
        .into_iter()
        .find(|(bit, _)| descriptor & bit != 0)
        .map(|(_, op)| op);
        match op {
            None => Rop::COPY,
            Some(op @ (Op::Clear | Op::Set | Op::Invert)) => Rop {
                op,
                inv_in: 0,
                inv_dest: 0,
                inv_res: 0,
            },
            Some(op) => Rop {
                op,
                inv_in: flag(in_invert),
                inv_dest: if op == Op::Put { 0 } else { flag(dest_invert) },
                inv_res: flag(INVERS_RES),
            },
        }
    }

    /// Whether the result is the input itself.
    pub fn is_copy(&self) -> bool {
        self.op == Op::Put && self.inv_in == self.inv_res
    }

    /// Whether applying the operation twice gives what applying it once
    /// does (X's "easy" raster operations, whose lines may draw a pixel
    /// twice): no input bit makes it invert the destination.
    pub fn idempotent(&self) -> bool {
        [0, u32::MAX].into_iter().all(|s| {
            [0, u32::MAX]
                .into_iter()
                .all(|d| self.apply(s, self.apply(s, d)) == self.apply(s, d))
        })
    }

    /// Whether the result does not depend on the input.
    pub fn ignores_input(&self) -> bool {
        matches!(self.op, Op::Clear | Op::Set | Op::Invert)
    }

    /// The result for input `s` on destination `d`.
    #[inline]
    pub fn apply(&self, s: u32, d: u32) -> u32 {
        let s = s ^ self.inv_in;
        let d = d ^ self.inv_dest;
        let r = match self.op {
            Op::Put => s,
            Op::Or => s | d,
            Op::And => s & d,
            Op::Xor => s ^ d,
            Op::Clear => return 0,
            Op::Set => return u32::MAX,
            Op::Invert => return !d,
        };
        r ^ self.inv_res
    }
}

/// A ternary raster operation (ROP3) of pattern `p`, source `s` and
/// destination `d`: bit `(p << 2) | (s << 1) | d` of `code` is the result
/// for those input bits, for each bit position.
#[inline]
pub fn rop3(code: u8, p: u32, s: u32, d: u32) -> u32 {
    let mut r = 0;
    for minterm in 0..8u8 {
        if code >> minterm & 1 != 0 {
            let pick = |bit: u8, v: u32| if minterm & bit != 0 { v } else { !v };
            r |= pick(4, p) & pick(2, s) & pick(1, d);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::ropd::*;
    use super::*;

    /// The sixteen binary functions, by what they give for (s, d) in
    /// (0,0), (0,1), (1,0), (1,1): bit i of the table is f(i >> 1, i & 1).
    fn table(rop: Rop) -> u8 {
        (0..4).fold(0, |t, i| {
            let s = if i & 2 != 0 { u32::MAX } else { 0 };
            let d = if i & 1 != 0 { u32::MAX } else { 0 };
            t | ((rop.apply(s, d) & 1) as u8) << i
        })
    }

    #[test]
    fn descriptors_give_the_functions_of_their_names() {
        let rop = |desc| Rop::from_descriptor(desc, INVERS_SRC, INVERS_DEST);
        // put, or, and, xor with every inversion, against truth tables.
        assert_eq!(table(rop(OP_PUT)), 0b1100);
        assert_eq!(table(rop(OP_PUT | INVERS_SRC)), 0b0011);
        assert_eq!(table(rop(OP_PUT | INVERS_SRC | INVERS_RES)), 0b1100);
        assert_eq!(
            table(rop(OP_PUT | INVERS_DEST)),
            0b1100,
            "put ignores the destination"
        );
        assert_eq!(table(rop(OP_OR)), 0b1110);
        assert_eq!(table(rop(OP_OR | INVERS_RES)), 0b0001, "nor");
        assert_eq!(
            table(rop(OP_OR | INVERS_RES | INVERS_SRC)),
            0b0100,
            "src and not dest"
        );
        assert_eq!(table(rop(OP_AND)), 0b1000);
        assert_eq!(table(rop(OP_AND | INVERS_SRC)), 0b0010, "not src and dest");
        assert_eq!(table(rop(OP_AND | INVERS_RES)), 0b0111, "nand");
        assert_eq!(table(rop(OP_XOR)), 0b0110);
        assert_eq!(table(rop(OP_XOR | INVERS_DEST)), 0b1001, "equiv");
        assert_eq!(table(rop(OP_XOR | INVERS_SRC | INVERS_DEST)), 0b0110);
        assert_eq!(table(rop(OP_BLACKNESS | INVERS_RES)), 0b0000);
        assert_eq!(table(rop(OP_WHITENESS)), 0b1111);
        assert_eq!(table(rop(OP_INVERS)), 0b0101);
        assert_eq!(table(rop(0)), 0b1100, "no operation bit copies");
        // The first operation bit wins.
        assert_eq!(table(rop(OP_XOR | OP_OR)), 0b1110);
    }

    #[test]
    fn the_input_inversion_bit_depends_on_the_input() {
        let brush = Rop::from_descriptor(OP_PUT | INVERS_BRUSH, INVERS_BRUSH, INVERS_DEST);
        assert_eq!(table(brush), 0b0011);
        let image = Rop::from_descriptor(OP_PUT | INVERS_BRUSH, INVERS_SRC, INVERS_DEST);
        assert!(image.is_copy());
        assert!(!brush.is_copy());
    }

    #[test]
    fn rop3_codes() {
        let (p, s, d) = (0xf0f0_f0f0, 0xcccc_cccc, 0xaaaa_aaaa);
        assert_eq!(rop3(0xcc, p, s, d), s, "SRCCOPY");
        assert_eq!(rop3(0xf0, p, s, d), p, "PATCOPY");
        assert_eq!(rop3(0xaa, p, s, d), d, "nop");
        assert_eq!(rop3(0x66, p, s, d), s ^ d, "SRCINVERT");
        assert_eq!(rop3(0x88, p, s, d), s & d, "SRCAND");
        assert_eq!(rop3(0x5a, p, s, d), p ^ d, "PATINVERT");
        assert_eq!(rop3(0xb8, p, s, d), (p & !s) | (d & s), "PSDPxax");
        assert_eq!(rop3(0x00, p, s, d), 0);
        assert_eq!(rop3(0xff, p, s, d), u32::MAX);
    }
}
