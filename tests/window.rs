//! The window output (`-o display:`) on a real X server: Xvfb, installed by the test
//! command. The tests read the window's pixels, press `q` in it and close it through a
//! pure-Rust X client (x11rb), and hide the X sinks from GStreamer to get the clear error.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::rust_connection::RustConnection;

use crate::live::{Running, spawn_reading};
use crate::support::*;

/// An Xvfb server on a display number it chose itself, stopped when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    /// Xvfb picks a free display and writes its number on `-displayfd` once it accepts
    /// connections: no guessed number can meet another server or a stale socket left by
    /// a killed one (CI once connected to such a socket before the new server listened).
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "640x480x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("Xvfb is needed for the window tests and could not start ({e}); `./segsynth.sh test` installs it (apt install xvfb)")
            });
        let stdout = child.stdout.take().expect("Xvfb stdout is piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let n: u32 = match line.trim().parse() {
            Ok(n) => n,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("Xvfb did not report a display within 30 s (it wrote {line:?}; {status:?})");
            }
        };
        Xvfb {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its socket and lock file; SIGKILL only if it hangs.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `segsynth run` on the X display; stderr lines arrive on the channel.
fn run_on(x: &Xvfb, args: &[&str], env: &[(&str, &str)]) -> (Running, Receiver<String>) {
    let mut cmd = Command::new(bin());
    cmd.arg("run")
        .args(args)
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    spawn_reading(cmd)
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("segsynth did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The top-level window named `title` (WM_NAME), waiting up to `limit` for it.
fn find_window(conn: &RustConnection, root: u32, title: &str, limit: Duration) -> u32 {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let tree = conn.query_tree(root).unwrap().reply().unwrap();
        for w in tree.children {
            let name = conn
                .get_property(
                    false,
                    w,
                    xproto::AtomEnum::WM_NAME,
                    xproto::AtomEnum::ANY,
                    0,
                    256,
                )
                .unwrap()
                .reply()
                .map(|r| String::from_utf8_lossy(&r.value).to_string())
                .unwrap_or_default();
            if name == title {
                return w;
            }
            if !name.is_empty() && !seen.contains(&name) {
                seen.push(name);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no window titled {title:?} within {limit:?}; windows seen: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Fraction of the window's pixels that are green (the colour content).
fn green_fraction(conn: &RustConnection, w: u32) -> f32 {
    let g = conn.get_geometry(w).unwrap().reply().unwrap();
    let img = conn
        .get_image(
            xproto::ImageFormat::Z_PIXMAP,
            w,
            0,
            0,
            g.width,
            g.height,
            !0,
        )
        .unwrap()
        .reply()
        .unwrap();
    // 24-bit depth is stored as 32-bit BGRx on Xvfb.
    let px: Vec<&[u8]> = img.data.chunks_exact(4).collect();
    let green = px
        .iter()
        .filter(|p| p[1] > 150 && p[0] < 100 && p[2] < 100)
        .count();
    green as f32 / px.len().max(1) as f32
}

fn keycode_for(conn: &RustConnection, keysym: u32) -> u8 {
    let setup = conn.setup();
    let (min, max) = (setup.min_keycode, setup.max_keycode);
    let map = conn
        .get_keyboard_mapping(min, max - min + 1)
        .unwrap()
        .reply()
        .unwrap();
    let per = map.keysyms_per_keycode as usize;
    let i = map
        .keysyms
        .iter()
        .position(|&k| k == keysym)
        .expect("keysym on the keyboard");
    min + (i / per) as u8
}

fn send_key(conn: &RustConnection, w: u32, keysym: u32) {
    let code = keycode_for(conn, keysym);
    for kind in [xproto::KEY_PRESS_EVENT, xproto::KEY_RELEASE_EVENT] {
        let ev = xproto::KeyPressEvent {
            response_type: kind,
            detail: code,
            sequence: 0,
            time: x11rb::CURRENT_TIME,
            root: conn.setup().roots[0].root,
            event: w,
            child: x11rb::NONE,
            root_x: 10,
            root_y: 10,
            event_x: 10,
            event_y: 10,
            state: xproto::KeyButMask::default(),
            same_screen: true,
        };
        conn.send_event(
            false,
            w,
            xproto::EventMask::KEY_PRESS | xproto::EventMask::KEY_RELEASE,
            ev,
        )
        .unwrap();
    }
    conn.flush().unwrap();
}

/// What a window manager sends when the user clicks the close button.
fn close_window(conn: &RustConnection, w: u32) {
    let atom = |name: &str| {
        conn.intern_atom(false, name.as_bytes())
            .unwrap()
            .reply()
            .unwrap()
            .atom
    };
    let (protocols, delete) = (atom("WM_PROTOCOLS"), atom("WM_DELETE_WINDOW"));
    let ev =
        xproto::ClientMessageEvent::new(32, w, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
    conn.send_event(false, w, xproto::EventMask::NO_EVENT, ev)
        .unwrap();
    conn.flush().unwrap();
}

const WINDOW_ARGS: [&str; 12] = [
    "-i",
    "test:",
    "-o",
    "display:",
    "--width",
    "320",
    "--height",
    "180",
    "--content",
    "color:#00ff00",
    "--stats-every",
    "0",
];

#[test]
fn the_window_shows_processed_frames_and_q_ends_the_run_cleanly() {
    let x = Xvfb::start();
    let dir = tmpdir();
    let rec = dir.path().join("rec.mkv");
    let mut args = WINDOW_ARGS.to_vec();
    args.extend(["-o", rec.to_str().unwrap(), "--duration", "60"]);
    let (mut child, rx) = run_on(&x, &args, &[]);
    let (conn, screen) = x11rb::connect(Some(&x.display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    // The title names segsynth and the input.
    let w = find_window(&conn, root, "segsynth: test:", Duration::from_secs(30));
    // Frames keep coming: the processed (green) picture fills most of the window.
    std::thread::sleep(Duration::from_millis(1500));
    let green = green_fraction(&conn, w);
    assert!(
        green > 0.5,
        "window shows the processed frames: {green:.2} green"
    );
    send_key(&conn, w, 0x71); // 'q'
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(
        status.success(),
        "q ends the run like Ctrl-C: {status:?}\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.contains("window (")),
        "says which sink: {lines:?}"
    );
    assert!(
        probe(&rec, &[], 8, 8).pts.len() >= 10,
        "the recording was finalised"
    );
}

#[test]
fn closing_the_window_ends_the_run_cleanly() {
    let x = Xvfb::start();
    let mut args = WINDOW_ARGS.to_vec();
    args.extend(["--duration", "60"]);
    let (mut child, rx) = run_on(&x, &args, &[]);
    let (conn, screen) = x11rb::connect(Some(&x.display)).expect("connect to Xvfb");
    let root = conn.setup().roots[screen].root;
    let w = find_window(&conn, root, "segsynth: test:", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    close_window(&conn, w);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let lines: Vec<String> = rx.try_iter().collect();
    assert!(
        status.success(),
        "closing ends the run cleanly: {status:?}\n{}",
        lines.join("\n")
    );
}

/// GStreamer's system plugins minus the X and GL video sinks.
fn plugins_without_x_sinks(dir: &Path) -> PathBuf {
    let out = Command::new("pkg-config")
        .args(["--variable=pluginsdir", "gstreamer-1.0"])
        .output()
        .expect("pkg-config");
    let system = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let hidden = dir.join("plugins");
    std::fs::create_dir_all(&hidden).unwrap();
    for e in std::fs::read_dir(&system).expect("plugins dir").flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if [
            "libgstximagesink.so",
            "libgstxvimagesink.so",
            "libgstopengl.so",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        std::os::unix::fs::symlink(e.path(), hidden.join(&name)).unwrap();
    }
    hidden
}

#[test]
fn an_x_server_without_video_sinks_is_one_clear_sentence() {
    let x = Xvfb::start();
    let dir = tmpdir();
    let plugins = plugins_without_x_sinks(dir.path());
    let registry = dir.path().join("registry.bin");
    let (mut child, rx) = run_on(
        &x,
        &WINDOW_ARGS,
        &[
            ("GST_PLUGIN_SYSTEM_PATH_1_0", plugins.to_str().unwrap()),
            ("GST_REGISTRY_1_0", registry.to_str().unwrap()),
        ],
    );
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let lines: Vec<String> = rx.try_iter().collect();
    let all = lines.join("\n");
    assert_eq!(status.code(), Some(1), "{all}");
    assert!(
        all.contains("no window: DISPLAY is set but no X video sink is installed (apt install gstreamer1.0-x)"),
        "{all}"
    );
    assert!(
        !all.contains("panicked") && !all.contains("serving"),
        "{all}"
    );
    // A forced sink that is not there says so too.
    let (mut child, rx) = run_on(
        &x,
        &[&WINDOW_ARGS[..], &["--display-sink", "nosuchsink"]].concat(),
        &[],
    );
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let all = rx.try_iter().collect::<Vec<_>>().join("\n");
    assert_eq!(status.code(), Some(1), "{all}");
    assert!(
        all.contains("--display-sink nosuchsink is not installed"),
        "{all}"
    );
}
