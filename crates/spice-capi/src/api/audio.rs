//! `spice-audio.h`: playback (pushed by the host) and record (pulled by it).

use crate::api::interface::instance_state;
use crate::audio::{pack, Playback, Record};
use crate::ffi::{SpicePlaybackInstance, SpiceRecordInstance};
use crate::guard::guard;
use crate::instance::Kind;

/// The best rate: Opus's, and what QEMU asks for.
const RATE: u32 = 48000;

/// Runs `f` on the playback state of an added instance.
fn with_playback(sin: *mut SpicePlaybackInstance, entry: &'static str, f: impl FnOnce(&Playback)) {
    // SAFETY: the host passes its own playback instance.
    let state = unsafe { instance_state(sin.cast(), Kind::Playback) };
    match state
        .and_then(|s| s.extra.as_ref())
        .and_then(|e| e.downcast_ref::<Playback>())
    {
        Some(p) => f(p),
        None => tracing::error!(entry, "playback call on an instance that was not added"),
    }
}

/// Runs `f` on the record state of an added instance.
fn with_record<R>(
    sin: *mut SpiceRecordInstance,
    entry: &'static str,
    fallback: R,
    f: impl FnOnce(&Record) -> R,
) -> R {
    // SAFETY: the host passes its own record instance.
    let state = unsafe { instance_state(sin.cast(), Kind::Record) };
    match state
        .and_then(|s| s.extra.as_ref())
        .and_then(|e| e.downcast_ref::<Record>())
    {
        Some(r) => f(r),
        None => {
            tracing::error!(entry, "record call on an instance that was not added");
            fallback
        }
    }
}

/// Reads a C volume array.
///
/// # Safety
/// `volume` is NULL or points to `n` values.
unsafe fn volumes(n: u8, volume: *const u16) -> Vec<u16> {
    if volume.is_null() {
        return Vec::new();
    }
    // SAFETY: `n` values per the caller's contract.
    unsafe { std::slice::from_raw_parts(volume, usize::from(n)) }.to_vec()
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_start(sin: *mut SpicePlaybackInstance) {
    guard("spice_server_playback_start", (), || {
        with_playback(sin, "spice_server_playback_start", |p| p.handle.start())
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_stop(sin: *mut SpicePlaybackInstance) {
    guard("spice_server_playback_stop", (), || {
        with_playback(sin, "spice_server_playback_stop", |p| p.handle.stop())
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_get_buffer(
    sin: *mut SpicePlaybackInstance,
    samples: *mut *mut u32,
    num_samples: *mut u32,
) {
    guard("spice_server_playback_get_buffer", (), || {
        let mut lent = None;
        with_playback(sin, "spice_server_playback_get_buffer", |p| lent = p.lend());
        let (ptr, n) = match lent {
            Some(ptr) => (ptr, spice_server::FRAMES_PER_PACKET as u32),
            // No buffer: the host drops the audio, as the C server makes it do
            // while no client listens.
            None => (std::ptr::null_mut(), 0),
        };
        if !samples.is_null() {
            // SAFETY: the host passes a pointer to its frame pointer.
            unsafe { *samples = ptr };
        }
        if !num_samples.is_null() {
            // SAFETY: the host passes a pointer to its frame count.
            unsafe { *num_samples = n };
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_put_samples(
    sin: *mut SpicePlaybackInstance,
    samples: *mut u32,
) {
    guard("spice_server_playback_put_samples", (), || {
        with_playback(sin, "spice_server_playback_put_samples", |p| p.play(samples))
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_set_volume(
    sin: *mut SpicePlaybackInstance,
    nchannels: u8,
    volume: *mut u16,
) {
    guard("spice_server_playback_set_volume", (), || {
        // SAFETY: the host passes `nchannels` volumes.
        let v = unsafe { volumes(nchannels, volume) };
        with_playback(sin, "spice_server_playback_set_volume", |p| {
            p.handle.set_volume(&v)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_set_mute(sin: *mut SpicePlaybackInstance, mute: u8) {
    guard("spice_server_playback_set_mute", (), || {
        with_playback(sin, "spice_server_playback_set_mute", |p| {
            p.handle.set_mute(mute != 0)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_start(sin: *mut SpiceRecordInstance) {
    guard("spice_server_record_start", (), || {
        with_record(sin, "spice_server_record_start", (), |r| r.handle.start())
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_stop(sin: *mut SpiceRecordInstance) {
    guard("spice_server_record_stop", (), || {
        with_record(sin, "spice_server_record_stop", (), |r| r.handle.stop())
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_get_samples(
    sin: *mut SpiceRecordInstance,
    samples: *mut u32,
    bufsize: u32,
) -> u32 {
    guard("spice_server_record_get_samples", 0, || {
        if samples.is_null() || bufsize == 0 {
            return 0;
        }
        with_record(sin, "spice_server_record_get_samples", 0, |r| {
            let mut frames = vec![[0i16; 2]; bufsize as usize];
            let n = r.handle.read(&mut frames);
            for (i, frame) in frames[..n].iter().enumerate() {
                // SAFETY: the host passes room for `bufsize` frames and `n <= bufsize`.
                unsafe { samples.add(i).write(pack(*frame)) };
            }
            n as u32
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_set_volume(
    sin: *mut SpiceRecordInstance,
    nchannels: u8,
    volume: *mut u16,
) {
    guard("spice_server_record_set_volume", (), || {
        // SAFETY: the host passes `nchannels` volumes.
        let v = unsafe { volumes(nchannels, volume) };
        with_record(sin, "spice_server_record_set_volume", (), |r| {
            r.handle.set_volume(&v)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_set_mute(sin: *mut SpiceRecordInstance, mute: u8) {
    guard("spice_server_record_set_mute", (), || {
        with_record(sin, "spice_server_record_set_mute", (), |r| {
            r.handle.set_mute(mute != 0)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_get_best_playback_rate(sin: *mut SpicePlaybackInstance) -> u32 {
    guard("spice_server_get_best_playback_rate", RATE, || {
        // QEMU asks with a NULL instance before adding one.
        let _ = sin;
        RATE
    })
}

/// The host's rate: clients are told it in `START`, and only at 48 kHz does
/// audio go as Opus (the C server's `snd_set_rate`).
#[no_mangle]
pub unsafe extern "C" fn spice_server_set_playback_rate(sin: *mut SpicePlaybackInstance, frequency: u32) {
    guard("spice_server_set_playback_rate", (), || {
        with_playback(sin, "spice_server_set_playback_rate", |p| {
            p.handle.set_rate(frequency)
        })
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_get_best_record_rate(sin: *mut SpiceRecordInstance) -> u32 {
    guard("spice_server_get_best_record_rate", RATE, || {
        let _ = sin;
        RATE
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_record_rate(sin: *mut SpiceRecordInstance, frequency: u32) {
    guard("spice_server_set_record_rate", (), || {
        with_record(sin, "spice_server_set_record_rate", (), |r| {
            r.handle.set_rate(frequency)
        })
    })
}
