//! Several monitors on one display: the picture cut into heads
//! (`DisplayHandle::set_heads`, the QXL device's monitors config), as the
//! stock spice-gtk client sees them — one monitor per head with its
//! rectangle, the pixels of each, and changes while connected.

use std::time::Duration;

use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_server::{DisplayHandle, Head, HeadsError, Rect, ServerBuilder};

const T: Duration = Duration::from_secs(30);

/// The monitors spice-gtk reports once it reports `count` of them.
fn wait_monitors(gtk: &mut SpiceGtk, count: usize) -> (Vec<[u64; 5]>, u64) {
    match gtk.wait_monitors(count, T) {
        Some(m) => m,
        None => panic!("spice-gtk never showed {count} monitors: {:#?}", gtk.seen),
    }
}

/// The packed pixels of `rect` in a packed `width`-wide picture.
fn crop(pixels: &[u8], width: u32, rect: Rect) -> Vec<u8> {
    (rect.y..rect.y + rect.height)
        .flat_map(|y| {
            let start = ((y * width + rect.x) * 4) as usize;
            pixels[start..start + rect.width as usize * 4].to_vec()
        })
        .collect()
}

#[test]
fn spice_gtk_shows_each_head_of_a_display() {
    spice_interop::init_logging();
    let canvas = Canvas::new(1280, 480, 12);
    let display = DisplayHandle::new();
    canvas.publish(&display);
    let heads = [
        Head {
            id: 0,
            x: 0,
            y: 0,
            width: 640,
            height: 480,
        },
        Head {
            id: 1,
            x: 640,
            y: 0,
            width: 640,
            height: 480,
        },
    ];
    display.set_heads(&heads, 4).expect("two heads");
    let server = ServerBuilder::new()
        .port(0)
        .display(display.clone())
        .spawn()
        .expect("server starts");

    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);
    let (monitors, max) = wait_monitors(&mut gtk, 2);
    assert_eq!(monitors, [[0, 0, 0, 640, 480], [1, 640, 0, 640, 480]]);
    assert_eq!(max, 4);

    // Each monitor's window shows its part of the picture, as the host drew it.
    let expected = canvas.packed();
    assert_eq!(gtk.wait_surface(1280, 480, &expected, T), 0, "the picture");
    let (_, _, shown) = gtk.surface().expect("surface");
    let mut shown = shown;
    spice_interop::pattern::zero_x(&mut shown);
    for head in heads {
        let rect = Rect::new(head.x, head.y, head.width, head.height);
        assert!(
            crop(&shown, 1280, rect) == crop(&expected, 1280, rect),
            "monitor {} shows its part",
            head.id
        );
    }
    assert_ne!(
        crop(&expected, 1280, Rect::new(0, 0, 640, 480)),
        crop(&expected, 1280, Rect::new(640, 0, 640, 480)),
        "the heads show different pixels"
    );

    // A refused configuration changes nothing; a new one reaches the client.
    assert_eq!(
        display.set_heads(&[heads[0], Head { id: 0, ..heads[1] }], 4),
        Err(HeadsError::Id(0))
    );
    display
        .set_heads(
            &[Head {
                id: 0,
                x: 0,
                y: 0,
                width: 1280,
                height: 480,
            }],
            4,
        )
        .unwrap();
    let (monitors, _) = wait_monitors(&mut gtk, 1);
    assert_eq!(monitors, [[0, 0, 0, 1280, 480]]);

    // Without heads, the whole picture is one monitor again, and a new
    // picture size carries its heads cut to it.
    display.set_heads(&heads, 2).unwrap();
    wait_monitors(&mut gtk, 2);
    let small = Canvas::new(800, 480, 13);
    small.publish(&display);
    let (monitors, _) = wait_monitors(&mut gtk, 2);
    assert_eq!(monitors, [[0, 0, 0, 640, 480], [1, 640, 0, 160, 480]]);
    display.set_heads(&[], 1).unwrap();
    let (monitors, _) = wait_monitors(&mut gtk, 1);
    assert_eq!(monitors, [[0, 0, 0, 800, 480]]);
    gtk.quit();
}
