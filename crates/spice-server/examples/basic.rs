//! The smallest useful host: a framebuffer with a moving bar, a keyboard and a
//! tablet that print what they receive, served on the built-in loop.
//!
//! ```text
//! cargo run -p spice-server --example basic -- 5930
//! remote-viewer spice://127.0.0.1:5930
//! ```

use std::time::Duration;

use spice_server::{DisplayHandle, Frame, Keyboard, MouseButtons, Rect, ServerBuilder, Tablet};

struct PrintKeyboard;

impl Keyboard for PrintKeyboard {
    fn push_scancode(&mut self, byte: u8) {
        println!("scancode {byte:#04x}");
    }
}

struct PrintTablet;

impl Tablet for PrintTablet {
    fn position(&mut self, x: i32, y: i32, buttons: MouseButtons) {
        println!("position {x},{y} buttons {:#x}", buttons.0);
    }
    fn wheel(&mut self, dz: i32, _buttons: MouseButtons) {
        println!("wheel {dz}");
    }
    fn buttons(&mut self, buttons: MouseButtons) {
        println!("buttons {:#x}", buttons.0);
    }
}

fn main() {
    let port = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(5930);
    let (width, height) = (640u32, 480u32);
    let display = DisplayHandle::new();
    let server = ServerBuilder::new()
        .port(port)
        .name("basic example")
        .display(display.clone())
        .keyboard(PrintKeyboard)
        .tablet(PrintTablet)
        .spawn()
        .expect("server starts");
    println!("open spice://{}", server.local_addr());

    let stride = width as usize * 4;
    let mut pixels = vec![0u8; stride * height as usize];
    for frame in 0u32.. {
        let bar = frame % width;
        for y in 0..height {
            for x in 0..width {
                let i = y as usize * stride + x as usize * 4;
                let lit = x.abs_diff(bar) < 8;
                pixels[i..i + 4].copy_from_slice(&[
                    (x / 3) as u8,
                    (y / 2) as u8,
                    if lit { 255 } else { 64 },
                    0,
                ]);
            }
        }
        let fb = Frame {
            width,
            height,
            stride,
            data: &pixels,
        };
        let damage = [Rect::new(bar.saturating_sub(9), 0, 19, height)];
        let result = if frame == 0 {
            display.publish(&fb)
        } else {
            display.update(&fb, &damage)
        };
        result.expect("valid frame");
        std::thread::sleep(Duration::from_millis(33));
    }
}
