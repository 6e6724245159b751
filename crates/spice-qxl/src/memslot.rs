//! Memslots: the table that turns guest `QXLPHYSICAL` values into host addresses.
//!
//! A `QXLPHYSICAL` is `[slot id : id_bits][generation : generation_bits][offset]`
//! from the most significant bit down. The host registers slots per group
//! (`QXLDevMemSlot`); a command's `group_id` selects the group. Translation
//! checks the group and slot indices (strictly below their counts: the `>`
//! instead of `>=` in C was CVE-2019-3813), the generation, and that the whole
//! byte range lies inside the slot without wrapping.

use crate::error::MemSlotError;

/// Largest number of slot groups accepted (QEMU uses 2).
pub const MAX_GROUPS: u32 = 256;
/// Largest number of slots per group accepted (QEMU uses 8).
pub const MAX_SLOTS: u32 = 256;

/// Memslot geometry, from `QXLDevInitInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSlotConfig {
    /// `num_memslots_groups`: `1..=MAX_GROUPS`.
    pub num_groups: u32,
    /// `num_memslots`: `1..=MAX_SLOTS`.
    pub num_slots: u32,
    /// `memslot_gen_bits`.
    pub generation_bits: u8,
    /// `memslot_id_bits`; `id_bits + generation_bits` must leave at least one offset bit.
    pub id_bits: u8,
}

impl MemSlotConfig {
    /// QEMU's configuration: 2 groups of 8 slots, 8 generation bits, 8 id bits.
    pub const QEMU: MemSlotConfig = MemSlotConfig {
        num_groups: 2,
        num_slots: 8,
        generation_bits: 8,
        id_bits: 8,
    };
}

/// One registered slot, from `QXLDevMemSlot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemSlot {
    /// Generation that addresses into this slot must carry.
    pub generation: u32,
    /// First host virtual address of the slot.
    pub virt_start: u64,
    /// One past the last host virtual address of the slot.
    pub virt_end: u64,
    /// Added (wrapping) to an address's offset bits to get the host address.
    pub addr_delta: u64,
}

/// The memslot table of one QXL device.
#[derive(Debug, Clone)]
pub struct MemSlots {
    config: MemSlotConfig,
    slots: Vec<Option<MemSlot>>,
    id_shift: u32,
    gen_shift: u32,
    gen_mask: u64,
    offset_mask: u64,
}

impl MemSlots {
    /// An empty table for `config`.
    pub fn new(config: MemSlotConfig) -> Result<Self, MemSlotError> {
        let invalid = |what, value: u64| MemSlotError::InvalidConfig { what, value };
        if config.num_groups == 0 || config.num_groups > MAX_GROUPS {
            return Err(invalid("num_groups", config.num_groups.into()));
        }
        if config.num_slots == 0 || config.num_slots > MAX_SLOTS {
            return Err(invalid("num_slots", config.num_slots.into()));
        }
        let tag_bits = u32::from(config.id_bits) + u32::from(config.generation_bits);
        if tag_bits >= 64 {
            return Err(invalid("id_bits + generation_bits", tag_bits.into()));
        }
        let count = config.num_groups as usize * config.num_slots as usize;
        Ok(Self {
            config,
            slots: vec![None; count],
            id_shift: 64 - u32::from(config.id_bits),
            gen_shift: 64 - tag_bits,
            gen_mask: (1u64 << config.generation_bits) - 1,
            offset_mask: u64::MAX >> tag_bits,
        })
    }

    /// The configuration the table was built with.
    pub fn config(&self) -> MemSlotConfig {
        self.config
    }

    fn index(&self, group: u32, slot: u64) -> Result<usize, MemSlotError> {
        if group >= self.config.num_groups {
            return Err(MemSlotError::GroupOutOfRange {
                group,
                num_groups: self.config.num_groups,
            });
        }
        if slot >= u64::from(self.config.num_slots) {
            return Err(MemSlotError::SlotOutOfRange {
                slot,
                num_slots: self.config.num_slots,
            });
        }
        Ok(group as usize * self.config.num_slots as usize + slot as usize)
    }

    /// Registers (or replaces) slot `slot` of group `group`.
    pub fn add(&mut self, group: u32, slot: u32, s: MemSlot) -> Result<(), MemSlotError> {
        let i = self.index(group, slot.into())?;
        if u64::from(s.generation) > self.gen_mask {
            return Err(MemSlotError::GenerationTooLarge {
                generation: s.generation,
                bits: self.config.generation_bits,
            });
        }
        if s.virt_start > s.virt_end {
            return Err(MemSlotError::InvertedRange {
                start: s.virt_start,
                end: s.virt_end,
            });
        }
        self.slots[i] = Some(s);
        Ok(())
    }

    /// Unregisters slot `slot` of group `group`; addresses into it stop translating.
    pub fn remove(&mut self, group: u32, slot: u32) -> Result<(), MemSlotError> {
        let i = self.index(group, slot.into())?;
        self.slots[i] = None;
        Ok(())
    }

    /// Unregisters every slot.
    pub fn reset(&mut self) {
        self.slots.fill(None);
    }

    /// Whether any slot is registered: until one is, no guest address can
    /// be valid, and the device's rings are not worth a look.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// The slot registered at `group`/`slot`, if any.
    pub fn get(&self, group: u32, slot: u32) -> Option<&MemSlot> {
        let i = self.index(group, slot.into()).ok()?;
        self.slots[i].as_ref()
    }

    /// The slot id bits of `phys`.
    pub fn slot_id(&self, phys: u64) -> u64 {
        phys.checked_shr(self.id_shift).unwrap_or(0)
    }

    /// The generation bits of `phys`.
    pub fn generation(&self, phys: u64) -> u64 {
        phys.checked_shr(self.gen_shift).unwrap_or(0) & self.gen_mask
    }

    /// The offset bits of `phys`.
    pub fn offset(&self, phys: u64) -> u64 {
        phys & self.offset_mask
    }

    /// Builds the `QXLPHYSICAL` for `offset` in slot `slot` with `generation`
    /// (bits that do not fit their field are dropped).
    pub fn physical(&self, slot: u32, generation: u32, offset: u64) -> u64 {
        let id = u64::from(slot).checked_shl(self.id_shift).unwrap_or(0);
        let gen = (u64::from(generation) & self.gen_mask)
            .checked_shl(self.gen_shift)
            .unwrap_or(0);
        id | gen | (offset & self.offset_mask)
    }

    /// Finds the slot of `phys` in `group` and the host address `phys` maps to.
    fn resolve(&self, phys: u64, group: u32) -> Result<(&MemSlot, u64), MemSlotError> {
        let slot_id = self.slot_id(phys);
        let slot = self.slots[self.index(group, slot_id)?]
            .as_ref()
            .ok_or(MemSlotError::SlotNotActive {
                group,
                slot: slot_id as u32,
            })?;
        let generation = self.generation(phys);
        if generation != u64::from(slot.generation) {
            return Err(MemSlotError::WrongGeneration {
                slot: slot_id as u32,
                expected: slot.generation,
                found: generation,
            });
        }
        Ok((slot, self.offset(phys).wrapping_add(slot.addr_delta)))
    }

    /// `QXLPHYSICAL` → host virtual address of `len` bytes.
    ///
    /// Checks `group < num_groups`, `slot < num_slots`, that the slot is
    /// active, the generation, and that `[virt, virt + len)` lies inside
    /// `[virt_start, virt_end)` with no overflow.
    pub fn translate(&self, phys: u64, group: u32, len: u64) -> Result<u64, MemSlotError> {
        self.translate_at(phys, group, 0, len)
    }

    /// Host virtual address of `len` bytes starting `offset` bytes after `phys`,
    /// all inside `phys`'s slot: for data that trails a structure (a chunk's
    /// bytes after its header, a palette's entries), where adding to `phys`
    /// itself could carry into the generation bits.
    pub fn translate_at(&self, phys: u64, group: u32, offset: u64, len: u64) -> Result<u64, MemSlotError> {
        let (slot, virt) = self.resolve(phys, group)?;
        let overflow = MemSlotError::Overflow { addr: virt, len };
        let start = virt.checked_add(offset).ok_or(overflow.clone())?;
        let end = start.checked_add(len).ok_or(overflow)?;
        if virt < slot.virt_start || start < slot.virt_start || end > slot.virt_end {
            return Err(MemSlotError::OutOfRange {
                addr: start,
                len,
                start: slot.virt_start,
                end: slot.virt_end,
            });
        }
        Ok(start)
    }

    /// How many bytes of `phys`'s slot follow `offset` bytes after `phys`
    /// (0 if that point is outside the slot): the most a terminator scan may read.
    pub fn available_at(&self, phys: u64, group: u32, offset: u64) -> Result<u64, MemSlotError> {
        let (slot, virt) = self.resolve(phys, group)?;
        let Some(start) = virt.checked_add(offset) else {
            return Ok(0);
        };
        if virt < slot.virt_start || start < slot.virt_start || start > slot.virt_end {
            return Ok(0);
        }
        Ok(slot.virt_end - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qemu() -> MemSlots {
        let mut s = MemSlots::new(MemSlotConfig::QEMU).unwrap();
        s.add(
            0,
            0,
            MemSlot {
                generation: 0,
                virt_start: 0,
                virt_end: u64::MAX,
                addr_delta: 0,
            },
        )
        .unwrap();
        s.add(
            1,
            1,
            MemSlot {
                generation: 3,
                virt_start: 0x10_0000,
                virt_end: 0x20_0000,
                addr_delta: 0x10_0000 - 0x8000,
            },
        )
        .unwrap();
        s
    }

    #[test]
    fn field_extraction_matches_qemu_layout() {
        let s = qemu();
        let phys = 0x0102_0000_0000_1234;
        assert_eq!(s.slot_id(phys), 1);
        assert_eq!(s.generation(phys), 2);
        assert_eq!(s.offset(phys), 0x1234);
        assert_eq!(s.physical(1, 2, 0x1234), phys);
    }

    #[test]
    fn translates_host_group_identity() {
        let s = qemu();
        assert_eq!(s.translate(0x7fff_1234_5678, 0, 16), Ok(0x7fff_1234_5678));
        assert!(matches!(
            s.translate(0xffff_ffff_ffff, 0, 2),
            Ok(0xffff_ffff_ffff)
        ));
    }

    #[test]
    fn translates_with_delta_and_checks_range() {
        let s = qemu();
        let p = s.physical(1, 3, 0x8000);
        assert_eq!(s.translate(p, 1, 0x10_0000), Ok(0x10_0000));
        assert!(matches!(
            s.translate(p, 1, 0x10_0001),
            Err(MemSlotError::OutOfRange { .. })
        ));
        let below = s.physical(1, 3, 0x7fff);
        assert!(matches!(
            s.translate(below, 1, 1),
            Err(MemSlotError::OutOfRange { .. })
        ));
        assert_eq!(s.translate_at(p, 1, 0x10, 0x20), Ok(0x10_0010));
        assert_eq!(s.available_at(p, 1, 0x10), Ok(0x10_0000 - 0x10));
    }

    #[test]
    fn rejects_off_by_one_indices_generation_and_overflow() {
        let s = qemu();
        assert!(matches!(
            s.translate(0, 2, 1),
            Err(MemSlotError::GroupOutOfRange { group: 2, .. })
        ));
        let p = s.physical(8, 0, 0x10);
        assert_eq!(s.slot_id(p), 8);
        assert!(matches!(
            s.translate(p, 0, 1),
            Err(MemSlotError::SlotOutOfRange { slot: 8, .. })
        ));
        assert!(matches!(
            s.translate(s.physical(1, 2, 0x8000), 1, 1),
            Err(MemSlotError::WrongGeneration { .. })
        ));
        assert!(matches!(
            s.translate(s.physical(2, 0, 0), 0, 1),
            Err(MemSlotError::SlotNotActive { .. })
        ));
        let mut wide = MemSlots::new(MemSlotConfig {
            num_groups: 1,
            num_slots: 1,
            generation_bits: 0,
            id_bits: 0,
        })
        .unwrap();
        wide.add(
            0,
            0,
            MemSlot {
                generation: 0,
                virt_start: 0,
                virt_end: u64::MAX,
                addr_delta: 0,
            },
        )
        .unwrap();
        assert!(matches!(
            wide.translate(u64::MAX - 1, 0, 2),
            Err(MemSlotError::Overflow { .. })
        ));
        assert!(wide.translate_at(u64::MAX - 4, 0, 8, 0).is_err());
    }

    #[test]
    fn config_and_add_are_validated() {
        for (groups, slots, gen, id) in [
            (0, 1, 8, 8),
            (1, 0, 8, 8),
            (257, 1, 8, 8),
            (1, 257, 8, 8),
            (1, 1, 32, 32),
        ] {
            assert!(MemSlots::new(MemSlotConfig {
                num_groups: groups,
                num_slots: slots,
                generation_bits: gen,
                id_bits: id,
            })
            .is_err());
        }
        let mut s = qemu();
        let slot = MemSlot {
            generation: 256,
            virt_start: 0,
            virt_end: 1,
            addr_delta: 0,
        };
        assert!(matches!(
            s.add(0, 1, slot),
            Err(MemSlotError::GenerationTooLarge { .. })
        ));
        let inverted = MemSlot {
            generation: 0,
            virt_start: 2,
            virt_end: 1,
            addr_delta: 0,
        };
        assert!(s.add(0, 1, inverted).is_err());
        assert!(s.add(2, 0, inverted).is_err());
        assert!(s.add(0, 8, inverted).is_err());
        s.remove(0, 0).unwrap();
        assert!(s.translate(0x1000, 0, 1).is_err());
        assert!(s.remove(0, 8).is_err());
        s.reset();
        assert!(s.get(1, 1).is_none());
    }
}
