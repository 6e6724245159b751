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

use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use super::region::Rect;

/// Something that turns frames of a stream's area into encoded frames.
pub(crate) trait FrameEncoder: Send + 'static {
    /// Encodes `pixels` (BGRx rows of `area`, packed) at `quality`, `time`
    /// into the stream; the frames to send (none if it failed or held the
    /// frame back).
    fn encode(&mut self, pixels: &[u8], area: Rect, quality: u8, time: Duration) -> Vec<Vec<u8>>;
}

/// A frame to encode.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) pixels: Vec<u8>,
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
    jobs: SyncSender<Job>,
    done: Receiver<Encoded>,
    in_flight: bool,
    /// The last frame's pixel buffer: the next frame is copied into it, so
    /// a stream does not allocate (and fault in) a frame's worth of memory
    /// for every frame.
    spare: Vec<u8>,
}

impl EncoderThread {
    /// Starts `encoder` on a thread; `wake` is called there after each frame.
    pub(crate) fn spawn(
        mut encoder: impl FrameEncoder,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (jobs, inbox) = mpsc::sync_channel::<Job>(1);
        let (outbox, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("SPICE stream encoder".into())
            .spawn(move || {
                for job in inbox {
                    let started = Instant::now();
                    let frames = encoder.encode(&job.pixels, job.area, job.quality, job.time);
                    let encoded = Encoded {
                        frames,
                        pixels: job.pixels,
                        quality: job.quality,
                        stamp: job.stamp,
                        encode_time: started.elapsed(),
                    };
                    if outbox.send(encoded).is_err() {
                        break;
                    }
                    wake();
                }
            })?;
        Ok(Self {
            jobs,
            done,
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

    /// Whether a frame is being encoded or waits to be taken.
    pub(crate) fn busy(&self) -> bool {
        self.in_flight
    }

    /// Hands a frame to the thread, unless one is in hand.
    pub(crate) fn submit(&mut self, job: Job) -> Result<(), SubmitError> {
        if self.in_flight {
            return Err(SubmitError::Busy);
        }
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => SubmitError::Busy,
            mpsc::TrySendError::Disconnected(_) => SubmitError::Gone,
        })?;
        self.in_flight = true;
        Ok(())
    }

    /// The frame encoded, once it is; `Err(Gone)` if the thread died with
    /// it.
    pub(crate) fn take(&mut self) -> Result<Option<Encoded>, SubmitError> {
        match self.done.try_recv() {
            Ok(mut encoded) => {
                self.in_flight = false;
                self.spare = std::mem::take(&mut encoded.pixels);
                Ok(Some(encoded))
            }
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(SubmitError::Gone),
        }
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
