//! `spice-audio.h`: playback and record.

use crate::ffi::{SpicePlaybackInstance, SpiceRecordInstance};
use crate::guard::guard;

/// The only rate the server uses: Opus's, and what QEMU asks for.
const RATE: u32 = 48000;

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_start(sin: *mut SpicePlaybackInstance) {
    guard("spice_server_playback_start", (), || {
        let _ = sin;
        tracing::debug!("playback start (audio not implemented yet)");
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_stop(sin: *mut SpicePlaybackInstance) {
    guard("spice_server_playback_stop", (), || {
        let _ = sin;
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_get_buffer(
    sin: *mut SpicePlaybackInstance,
    samples: *mut *mut u32,
    num_samples: *mut u32,
) {
    guard("spice_server_playback_get_buffer", (), || {
        let _ = sin;
        // No buffer: the host drops the audio, as with no client connected.
        if !samples.is_null() {
            // SAFETY: the host passes a pointer to its frame pointer.
            unsafe { *samples = std::ptr::null_mut() };
        }
        if !num_samples.is_null() {
            // SAFETY: the host passes a pointer to its frame size.
            unsafe { *num_samples = 0 };
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_put_samples(
    sin: *mut SpicePlaybackInstance,
    samples: *mut u32,
) {
    guard("spice_server_playback_put_samples", (), || {
        let _ = (sin, samples);
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_set_volume(
    sin: *mut SpicePlaybackInstance,
    nchannels: u8,
    volume: *mut u16,
) {
    guard("spice_server_playback_set_volume", (), || {
        let _ = (sin, nchannels, volume);
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_playback_set_mute(sin: *mut SpicePlaybackInstance, mute: u8) {
    guard("spice_server_playback_set_mute", (), || {
        let _ = (sin, mute);
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_start(sin: *mut SpiceRecordInstance) {
    guard("spice_server_record_start", (), || {
        let _ = sin;
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_stop(sin: *mut SpiceRecordInstance) {
    guard("spice_server_record_stop", (), || {
        let _ = sin;
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_get_samples(
    sin: *mut SpiceRecordInstance,
    samples: *mut u32,
    bufsize: u32,
) -> u32 {
    guard("spice_server_record_get_samples", 0, || {
        let _ = (sin, samples, bufsize);
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_set_volume(
    sin: *mut SpiceRecordInstance,
    nchannels: u8,
    volume: *mut u16,
) {
    guard("spice_server_record_set_volume", (), || {
        let _ = (sin, nchannels, volume);
    })
}

#[no_mangle]
pub unsafe extern "C" fn spice_server_record_set_mute(sin: *mut SpiceRecordInstance, mute: u8) {
    guard("spice_server_record_set_mute", (), || {
        let _ = (sin, mute);
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

#[no_mangle]
pub unsafe extern "C" fn spice_server_set_playback_rate(sin: *mut SpicePlaybackInstance, frequency: u32) {
    guard("spice_server_set_playback_rate", (), || {
        let _ = sin;
        if frequency != RATE {
            tracing::warn!(frequency, "only 48000 Hz playback is supported");
        }
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
        let _ = sin;
        if frequency != RATE {
            tracing::warn!(frequency, "only 48000 Hz recording is supported");
        }
    })
}
