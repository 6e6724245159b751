//! A live stream's encoder on a thread of its own.
//!
//! A VP8 or H.264 frame takes milliseconds to tens of milliseconds to
//! encode. On the display thread that time would hold up everything else it
//! serves: the display's other clients, its device's rings (under QEMU, the
//! guest's QXL commands) and, since frames are read under the display's
//! lock, the host's own updates. So each stream's encoder runs on a thread
//! of its own, one frame at a time: the display thread hands it a copy of
//! the area and goes on; the frame comes back through [`EncoderThread::take`]
//! after the thread woke the display thread. While a frame is being encoded
//! no other is taken, so a slow encoder lowers the stream's frame rate
//! instead of queueing frames (the next frame is taken from the surface as
//! it is then).
//!
//! A frame that takes about a millisecond (an MJPEG frame of a small video)
//! is encoded on the display thread instead ([`EncoderThread::inline`]), as
//! the C server encodes every frame on its worker: handing it over and back
//! would cost more wake-ups than the frame takes to encode. Its encoding
//! still waits for [`EncoderThread::take`], which the display thread calls
//! after it let go of the display's lock, so the host's updates never wait
//! for a frame to be encoded.

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use super::deferred::SharedFrame;
use super::region::Rect;

/// Something that turns frames of a stream's area into encoded frames.
pub(crate) trait FrameEncoder: Send + 'static {
    /// Encodes `pixels` (BGRx rows of `area`, packed) at `quality`, `time`
    /// into the stream; the frames to send (none if it failed or held the
    /// frame back).
    fn encode(&mut self, pixels: &[u8], area: Rect, quality: u8, time: Duration) -> Vec<Vec<u8>>;

    /// Whether [`Self::encode_shared`] encodes frames where a deferred
    /// drawing keeps their pixels (MJPEG does; a GStreamer encoder takes
    /// packed rows only).
    fn reads_shared(&self) -> bool {
        false
    }

    /// Encodes a frame whose pixels were left where a deferred drawing has
    /// them. Only an encoder that [`Self::reads_shared`] is handed such
    /// frames; any other gets none out of this default.
    fn encode_shared(&mut self, frame: &SharedFrame, quality: u8) -> Vec<Vec<u8>> {
        let _ = (frame, quality);
        tracing::debug!("a shared frame reached an encoder that cannot read it; dropped");
        Vec::new()
    }
}

/// A frame to encode.
#[derive(Debug)]
pub(crate) struct Job {
    /// The frame's pixels, copied (empty when `shared` has them).
    pub(crate) pixels: Vec<u8>,
    /// The frame's pixels where a deferred drawing keeps them: only for
    /// an encoder that reads them there ([`EncoderThread::reads_in_place`]).
    pub(crate) shared: Option<SharedFrame>,
    pub(crate) area: Rect,
    pub(crate) quality: u8,
    /// Time into the stream.
    pub(crate) time: Duration,
    /// The multimedia time the frame was taken at (its `STREAM_DATA` stamp).
    pub(crate) stamp: u32,
}

/// A frame encoded.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) frames: Vec<Vec<u8>>,
    /// The job's pixel buffer, handed back for the next frame.
    pub(crate) pixels: Vec<u8>,
    pub(crate) quality: u8,
    pub(crate) stamp: u32,
    pub(crate) encode_time: Duration,
}

/// Why a frame was not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// A frame is still being encoded (or waits to be taken).
    Busy,
    /// The encoder's thread is gone (it failed).
    Gone,
}

/// An encoder on its thread. Dropping it lets the thread finish the frame
/// in hand and exit; nothing waits for that.
#[derive(Debug)]
pub(crate) struct EncoderThread {
    runner: Runner,
    /// The encoder's [`FrameEncoder::reads_shared`].
    reads_shared: bool,
    in_flight: bool,
    /// The last frame's pixel buffer: the next frame is copied into it, so
    /// a stream does not allocate (and fault in) a frame's worth of memory
    /// for every frame.
    spare: Vec<u8>,
}

/// Where frames are encoded.
enum Runner {
    /// On a thread of its own.
    Thread {
        jobs: SyncSender<Job>,
        done: Receiver<Encoded>,
    },
    /// In [`EncoderThread::take`], on the caller's thread: the frame
    /// submitted waits in `pending` until then (`encoder` is `None` once
    /// it failed).
    Inline {
        encoder: Option<Box<dyn FrameEncoder>>,
        pending: Option<Job>,
    },
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Thread { .. } => "Thread",
            Self::Inline { .. } => "Inline",
        })
    }
}

/// Encodes one job, timing it.
fn encode_job(encoder: &mut dyn FrameEncoder, job: Job) -> Encoded {
    let started = Instant::now();
    let frames = match &job.shared {
        Some(frame) => encoder.encode_shared(frame, job.quality),
        None => encoder.encode(&job.pixels, job.area, job.quality, job.time),
    };
    Encoded {
        frames,
        pixels: job.pixels,
        quality: job.quality,
        stamp: job.stamp,
        encode_time: started.elapsed(),
    }
}

impl EncoderThread {
    /// `encoder` on the caller's thread: [`Self::submit`] keeps the frame
    /// and the next [`Self::take`] encodes it and has it at once (so the
    /// caller encodes it where it chooses, outside its locks). An encoder
    /// that panics is reported as gone, as a thread that died would be.
    pub(crate) fn inline(encoder: impl FrameEncoder) -> Self {
        Self {
            reads_shared: encoder.reads_shared(),
            runner: Runner::Inline {
                encoder: Some(Box::new(encoder)),
                pending: None,
            },
            in_flight: false,
            spare: Vec::new(),
        }
    }

    /// Starts `encoder` on a thread; `wake` is called there after each frame.
    pub(crate) fn spawn(
        mut encoder: impl FrameEncoder,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let reads_shared = encoder.reads_shared();
        let (jobs, inbox) = mpsc::sync_channel::<Job>(1);
        let (outbox, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("SPICE stream encoder".into())
            .spawn(move || {
                for job in inbox {
                    let encoded = encode_job(&mut encoder, job);
                    if outbox.send(encoded).is_err() {
                        break;
                    }
                    wake();
                }
            })?;
        Ok(Self {
            runner: Runner::Thread { jobs, done },
            reads_shared,
            in_flight: false,
            spare: Vec::new(),
        })
    }

    /// An empty buffer for the next frame's pixels (the last frame's, when
    /// it came back).
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut buffer = std::mem::take(&mut self.spare);
        buffer.clear();
        buffer
    }

    /// Whether a frame may be left where a deferred drawing has its pixels
    /// ([`Job::shared`]) instead of being copied: the encoder reads them
    /// there, on the display's thread or on its own. The pixels'
    /// [`SharedPixels`](super::deferred::SharedPixels) keep them readable
    /// until the frame is dropped, and refuse a frame whose memory changed.
    pub(crate) fn reads_in_place(&self) -> bool {
        self.reads_shared
    }

    /// Whether a frame is being encoded or waits to be taken.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight
    }

    /// Hands a frame to the thread, unless one is in hand.
    pub(crate) fn submit(&mut self, job: Job) -> Result<(), SubmitError> {
        if self.in_flight {
            return Err(SubmitError::Busy);
        }
        match &mut self.runner {
            Runner::Thread { jobs, .. } => jobs.try_send(job).map_err(|e| match e {
                mpsc::TrySendError::Full(_) => SubmitError::Busy,
                mpsc::TrySendError::Disconnected(_) => SubmitError::Gone,
            })?,
            Runner::Inline { encoder, pending } => {
                if encoder.is_none() {
                    return Err(SubmitError::Gone);
                }
                *pending = Some(job);
            }
        }
        self.in_flight = true;
        Ok(())
    }

    /// The frame encoded, once it is (inline, encoded now); `Err(Gone)` if
    /// the encoder died with it.
    pub(crate) fn take(&mut self) -> Result<Option<Encoded>, SubmitError> {
        let mut encoded = match &mut self.runner {
            Runner::Thread { done, .. } => match done.try_recv() {
                Ok(encoded) => encoded,
                Err(TryRecvError::Empty) => return Ok(None),
                Err(TryRecvError::Disconnected) => return Err(SubmitError::Gone),
            },
            Runner::Inline { encoder, pending } => {
                let Some(job) = pending.take() else {
                    return Ok(None);
                };
                // The frame leaves our hands whether it encodes or not.
                self.in_flight = false;
                let mut boxed = encoder.take().ok_or(SubmitError::Gone)?;
                let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    encode_job(boxed.as_mut(), job)
                }))
                .map_err(|_| SubmitError::Gone)?;
                *encoder = Some(boxed);
                encoded
            }
        };
        self.in_flight = false;
        self.spare = std::mem::take(&mut encoded.pixels);
        Ok(Some(encoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Takes `delay` per frame and returns the frame's first byte and size.
    struct Slow {
        delay: Duration,
    }

    impl FrameEncoder for Slow {
        fn encode(&mut self, pixels: &[u8], area: Rect, quality: u8, _: Duration) -> Vec<Vec<u8>> {
            std::thread::sleep(self.delay);
            vec![vec![pixels[0], quality, area.width as u8]]
        }
    }

    /// Panics on the frame.
    struct Broken;

    impl FrameEncoder for Broken {
        fn encode(&mut self, _: &[u8], _: Rect, _: u8, _: Duration) -> Vec<Vec<u8>> {
            panic!("encoder failure (expected by the test)");
        }
    }

    fn job(first: u8, stamp: u32) -> Job {
        Job {
            pixels: vec![first; 16],
            shared: None,
            area: Rect::new(0, 0, 2, 2),
            quality: 70,
            time: Duration::ZERO,
            stamp,
        }
    }

    fn wait_take(encoder: &mut EncoderThread) -> Encoded {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(done) = encoder.take().expect("thread alive") {
                return done;
            }
            assert!(Instant::now() < deadline, "no frame came back");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_slow_frame_does_not_hold_up_the_caller_and_comes_back_with_a_wake() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        let delay = Duration::from_millis(300);
        let mut encoder = EncoderThread::spawn(Slow { delay }, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let started = Instant::now();
        encoder.submit(job(7, 1234)).unwrap();
        assert!(
            started.elapsed() < delay / 3,
            "submit returned after {:?}",
            started.elapsed()
        );
        assert!(encoder.busy());
        assert_eq!(
            encoder.submit(job(8, 1)),
            Err(SubmitError::Busy),
            "one frame at a time"
        );
        assert!(encoder.take().unwrap().is_none(), "not yet encoded");
        let done = wait_take(&mut encoder);
        assert!(started.elapsed() >= delay);
        assert_eq!(done.frames, [vec![7, 70, 2]]);
        assert_eq!((done.stamp, done.quality), (1234, 70));
        assert!(done.encode_time >= delay);
        assert_eq!(wakes.load(Ordering::SeqCst), 1);
        assert!(!encoder.busy());
        encoder.submit(job(9, 2)).unwrap();
        assert_eq!(wait_take(&mut encoder).frames, [vec![9, 70, 2]]);
    }

    #[test]
    fn the_frames_buffer_comes_back_for_the_next_frame() {
        let mut encoder = EncoderThread::spawn(
            Slow {
                delay: Duration::ZERO,
            },
            || {},
        )
        .unwrap();
        assert_eq!(encoder.buffer().capacity(), 0, "nothing to reuse yet");
        let mut pixels = Vec::with_capacity(4096);
        pixels.extend_from_slice(&[5; 16]);
        let address = pixels.as_ptr();
        encoder.submit(Job { pixels, ..job(0, 0) }).unwrap();
        assert_eq!(wait_take(&mut encoder).frames, [vec![5, 70, 2]]);
        let again = encoder.buffer();
        assert!(again.is_empty(), "emptied for the next frame");
        assert_eq!(
            (again.as_ptr(), again.capacity()),
            (address, 4096),
            "the same memory"
        );
    }

    #[test]
    fn dropping_it_mid_frame_does_not_wait_for_the_frame() {
        let mut encoder = EncoderThread::spawn(
            Slow {
                delay: Duration::from_millis(500),
            },
            || {},
        )
        .unwrap();
        encoder.submit(job(1, 0)).unwrap();
        let started = Instant::now();
        drop(encoder);
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    /// Inline, `submit` only keeps the frame (the display thread submits
    /// it under the display's lock); the frame is encoded by `take` on the
    /// caller's thread and had at once, with no wake-up; its buffer comes
    /// back the same way.
    #[test]
    fn an_inline_encoder_encodes_the_frame_when_it_is_taken() {
        let delay = Duration::from_millis(300);
        let mut encoder = EncoderThread::inline(Slow { delay });
        assert!(encoder.take().unwrap().is_none(), "nothing submitted");
        let started = Instant::now();
        encoder.submit(job(7, 99)).unwrap();
        assert!(
            started.elapsed() < delay,
            "submit encoded the frame ({:?})",
            started.elapsed()
        );
        assert!(encoder.busy());
        assert_eq!(encoder.submit(job(8, 1)), Err(SubmitError::Busy));
        let started = Instant::now();
        let done = encoder.take().unwrap().expect("the frame is ready");
        assert!(started.elapsed() >= delay, "encoded in take");
        assert_eq!((done.frames, done.stamp), (vec![vec![7, 70, 2]], 99));
        assert!(!encoder.busy());
        assert_eq!(encoder.buffer().capacity(), 16, "the frame's buffer came back");
        encoder.submit(job(9, 2)).unwrap();
        assert_eq!(encoder.take().unwrap().unwrap().frames, [vec![9, 70, 2]]);
    }

    #[test]
    fn a_failed_inline_encoder_is_gone() {
        let mut encoder = EncoderThread::inline(Broken);
        encoder.submit(job(1, 0)).unwrap();
        assert_eq!(encoder.take().unwrap_err(), SubmitError::Gone);
        assert_eq!(
            encoder.submit(job(2, 0)),
            Err(SubmitError::Gone),
            "and stays gone"
        );
        assert!(encoder.take().unwrap().is_none(), "nothing in hand");
    }

    #[test]
    fn a_failed_thread_is_reported_not_waited_for() {
        let mut encoder = EncoderThread::spawn(Broken, || {}).unwrap();
        encoder.submit(job(1, 0)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let gone = loop {
            match encoder.take() {
                Err(e) => break e,
                Ok(Some(_)) => panic!("a broken encoder returned a frame"),
                Ok(None) => {
                    assert!(Instant::now() < deadline, "the failure was never reported");
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        };
        assert_eq!(gone, SubmitError::Gone);
    }
}
