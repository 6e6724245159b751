#!/usr/bin/python3
"""Drive a real spice-gtk client (SpiceClientGLib) from a test, headless.

Commands arrive on stdin as JSON lines; events leave on stdout as JSON lines.
The client is the stock spice-gtk library through GObject introspection, so
what it does is what remote-viewer would do.

Commands:
  {"cmd": "connect", "uri": "spice://127.0.0.1:5900", "password": "..."}
                                                 (optional "cache_size": pixmap cache bytes;
                                                 "props": other SpiceSession properties,
                                                 e.g. {"tls-port": "5901", "ca-file": "..."})
  {"cmd": "dump", "path": "/tmp/x.raw"}          primary surface bytes (BGRX rows)
  {"cmd": "key_press", "code": 30}               PC XT scancode; E0 keys as 0x100|code
  {"cmd": "key_release", "code": 30}
  {"cmd": "position", "x": 10, "y": 20, "buttons": 0}
  {"cmd": "motion", "dx": 1, "dy": 2, "buttons": 0}
  {"cmd": "button_press", "button": 1, "buttons": 1}
  {"cmd": "button_release", "button": 1, "buttons": 0}
  {"cmd": "key_press_and_release", "code": 30}   one KEY_SCANCODE message
  {"cmd": "session_info"}                        name, uuid, mouse mode
  {"cmd": "set_key_locks", "locks": 2}
  {"cmd": "monitors_config", "width": 800, "height": 600}
                                                 ask for display 0 at this size
                                                 (needs the agent connected):
                                                 "monitors-config-sent"
  {"cmd": "monitors_config", "displays": [[0, 0, 800, 600], [800, 0, 800, 600]]}
                                                 several monitors, enabled in order
  {"cmd": "clipboard_grab", "selection": 0, "text": "..."}
                                                 the client owns the guest's
                                                 clipboard (UTF-8 text) and
                                                 answers the agent's requests
                                                 with the text: "clipboard-request"
  {"cmd": "clipboard_request", "selection": 0, "type": 1}
                                                 asks the agent for what the
                                                 guest grabbed: "clipboard-data"
                                                 (with "text") when it comes
  {"cmd": "port_write", "name": "org.x.0", "hex": "6869"}
                                                 writes into the port channel of
                                                 that name: "port-written"
  {"cmd": "port_event", "name": "org.x.0", "event": 0}
                                                 SPICE_PORT_EVENT_* to the port's device
  {"cmd": "video_codecs", "codecs": [2, 1]}     preferred stream codecs
                                                 (SPICE_VIDEO_CODEC_TYPE_*, as
                                                 spicy's menu sets them):
                                                 "video-codecs" with "ok"
  {"cmd": "disconnect"}
  {"cmd": "quit"}
Benchmarks (connect with "quiet": true to count invalidates instead of
printing each one):
  {"cmd": "checksum"}                            CRC-32 of the primary surface
  {"cmd": "watch", "crc": 123, "timeout": 60}    wait until the surface's CRC-32
                                                 is this one: "frame-match" or
                                                 "frame-timeout"
  {"cmd": "stats"}                               per channel total-read-bytes
  {"cmd": "monitors"}                            the display channel's monitors
                                                 (also sent on every change):
                                                 {"event": "monitors", "monitors":
                                                 [{"id", "surface_id", "x", "y",
                                                 "width", "height"}], "max": N}
The CRC-32 (zlib's) is over packed rows of B, G, R, 0 bytes per pixel. Times are
CLOCK_MONOTONIC microseconds, comparable with the host's on the same machine.
Audio (connect with "audio": true to set the session's enable-audio):
  {"cmd": "playback_dump", "path": "/tmp/x.pcm"} PCM received so far (then cleared)
  {"cmd": "record_send", "hex": "0100ff7f", "time": 0}  PCM for the record channel
Events: ready, channel-new, channel-event, primary-create, primary-destroy,
invalidate, mark, mouse-mode, key-modifiers, agent-update, clipboard-grab
(with the guest's "types"), clipboard-request, clipboard-data, cursor-set (with the crc32 of
its RGBA pixels), cursor-hide,
cursor-move, dumped, checksum, frame-match, frame-timeout, stats, error; with
audio: playback-start, playback-data, playback-stop, playback-volume,
playback-mute, playback-dumped, record-start, record-stop, record-sent; ports:
port-opened (name, opened: PORT_INIT and events), port-data (name, hex),
port-event (name, port_event), port-written.
"""

import ctypes
import json
import os
import sys
import time
import zlib

import gi

gi.require_version("SpiceClientGLib", "2.0")
from gi.repository import GLib, GObject  # noqa: E402
from gi.repository import SpiceClientGLib as Spice  # noqa: E402


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


CHECK_MS = 50


def now_us():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def on(obj, signal, callback):
    # Session.connect() shadows GObject.connect(), so call the base class directly.
    return GObject.Object.connect(obj, signal, callback)


class Driver:
    def __init__(self):
        self.loop = GLib.MainLoop()
        self.session = None
        self.main = None
        self.inputs = None
        self.display = None
        self.primary = None  # (width, height, stride, address)
        self.record = None
        self.playback_pcm = bytearray()
        self.channels = []
        self.quiet = False
        self.invalidates = 0
        self.last_invalidate_us = None
        self.connect_us = None
        self.watching = None  # (crc, deadline_us, checks, time of the last miss)
        self.check_scheduled = False
        self.last_check_us = 0
        self.clipboard_text = {}  # selection -> text the client offers
        self.ports = []  # SpicePortChannel (and webdav) channels
        self.port_buffers = []  # bytes spice-gtk still references (write_async)

    # ---- client side -------------------------------------------------------

    def connect(self, uri, password=None, audio=False, quiet=False, cache_size=None, props=None):
        self.quiet = bool(quiet)
        self.connect_us = now_us()
        self.session = Spice.Session()
        self.session.set_property("uri", uri)
        if password is not None:
            self.session.set_property("password", password)
        # Audio channels exist only with enable-audio; no audio device is needed
        # because no SpiceAudio backend is attached: the signals come to us.
        self.session.set_property("enable-audio", bool(audio))
        if cache_size is not None:
            # Bytes; DISPLAY_INIT offers a quarter of it as pixels.
            self.session.set_property("cache-size", int(cache_size))
        for name, value in (props or {}).items():
            self.session.set_property(name, value)
        on(self.session, "channel-new", self.on_channel_new)
        on(self.session, "disconnected", lambda s: emit("session-disconnected"))
        # 0 none, 1 switching host, 2 migrating (semi-seamless), 3 connecting.
        on(self.session, "notify::migration-state",
           lambda s, _: emit("migration-state", state=int(s.get_property("migration-state"))))
        if not Spice.Session.connect(self.session):
            emit("error", message="session connect failed")

    def on_channel_new(self, session, channel):
        kind = type(channel).__name__
        self.channels.append(channel)
        emit("channel-new", type=kind, id=channel.get_property("channel-id"))
        on(channel, "channel-event", self.on_channel_event)
        if isinstance(channel, Spice.MainChannel):
            self.main = channel
            on(channel, "main-mouse-update", self.on_mouse_update)
            on(channel, "main-agent-update", self.on_agent_update)
            on(channel, "main-clipboard-selection-grab", self.on_clipboard_grab)
            on(channel, "main-clipboard-selection-request", self.on_clipboard_request)
            on(channel, "main-clipboard-selection", self.on_clipboard_data)
        elif isinstance(channel, Spice.DisplayChannel):
            if self.display is None or channel.get_property("channel-id") == 0:
                self.display = channel
            on(channel, "display-primary-create", self.on_primary_create)
            on(channel, "display-primary-destroy", lambda ch: self.on_primary_destroy(ch))
            on(channel, "display-invalidate", self.on_invalidate)
            on(channel, "display-mark", lambda ch, mark: emit("mark", mark=mark))
            on(channel, "notify::monitors", lambda ch, _: self.emit_monitors(ch))
        elif isinstance(channel, Spice.InputsChannel):
            self.inputs = channel
            on(channel, "inputs-modifiers", self.on_modifiers)
        elif isinstance(channel, Spice.CursorChannel):
            on(channel, "cursor-set", self.on_cursor_set)
            on(channel, "cursor-hide", lambda ch: emit("cursor-hide"))
            on(channel, "cursor-move", lambda ch, x, y: emit("cursor-move", x=x, y=y))
        elif isinstance(channel, Spice.PlaybackChannel):
            on(channel, "playback-start", self.on_playback_start)
            on(channel, "playback-data", self.on_playback_data)
            on(channel, "playback-stop", lambda ch: emit("playback-stop"))
            on(channel, "notify::volume", self.on_volume)
            on(channel, "notify::mute", lambda ch, _: emit("playback-mute", mute=ch.get_property("mute")))
        elif isinstance(channel, Spice.PortChannel):
            self.ports.append(channel)
            on(channel, "notify::port-opened", self.on_port_opened)
            on(channel, "port-data", self.on_port_data)
            on(channel, "port-event", lambda ch, ev: emit("port-event", name=ch.get_property("port-name"), port_event=ev))
        elif isinstance(channel, Spice.RecordChannel):
            self.record = channel
            on(channel, "record-start", self.on_record_start)
            on(channel, "record-stop", lambda ch: emit("record-stop"))
        Spice.Channel.connect(channel)

    def on_channel_event(self, channel, event):
        emit(
            "channel-event",
            type=type(channel).__name__,
            code=event.value_nick,
            error=channel.get_error().message if channel.get_error() else None,
        )

    def on_port_opened(self, channel, _pspec):
        emit("port-opened", name=channel.get_property("port-name"), opened=bool(channel.get_property("port-opened")))

    def on_port_data(self, channel, data, size):
        raw = ctypes.string_at(data, size) if data and size else b""
        emit("port-data", name=channel.get_property("port-name"), hex=raw.hex())

    def port(self, name):
        for channel in self.ports:
            if channel.get_property("port-name") == name:
                return channel
        raise KeyError("no port channel named " + name)

    def emit_monitors(self, channel):
        # "monitors" is a GArray of SpiceDisplayMonitorConfig, which PyGObject
        # cannot convert: read it through GObject's C API.
        class GArray(ctypes.Structure):
            _fields_ = [("data", ctypes.c_void_p), ("len", ctypes.c_uint)]

        class Monitor(ctypes.Structure):
            _fields_ = [(f, ctypes.c_uint) for f in ("id", "surface_id", "x", "y", "width", "height")]

        gobject = ctypes.CDLL("libgobject-2.0.so.0")
        glib = ctypes.CDLL("libglib-2.0.so.0")
        gobject.g_object_get.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
        glib.g_array_unref.argtypes = [ctypes.c_void_p]
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        array = ctypes.c_void_p()
        gobject.g_object_get(get(channel.__gpointer__, None), b"monitors", ctypes.byref(array), None)
        monitors = []
        if array.value:
            a = ctypes.cast(array, ctypes.POINTER(GArray)).contents
            items = ctypes.cast(a.data, ctypes.POINTER(Monitor))[: a.len] if a.len else []
            monitors = [{f: getattr(m, f) for f, _ in Monitor._fields_} for m in items]
            glib.g_array_unref(array)
        emit("monitors", channel_id=channel.get_property("channel-id"), monitors=monitors,
             max=channel.get_property("monitors-max"))

    def port_write(self, name, data):
        # spice-gtk sends the caller's buffer by reference once the message
        # goes out, so it must outlive the call: through ctypes with a buffer
        # kept here, not a list PyGObject frees on return.
        channel = self.port(name)
        buf = ctypes.create_string_buffer(data, len(data))
        self.port_buffers.append(buf)
        lib = ctypes.CDLL("libspice-client-glib-2.0.so.8")
        lib.spice_port_channel_write_async.argtypes = [ctypes.c_void_p] * 2 + [ctypes.c_size_t] + [ctypes.c_void_p] * 3
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
        pointer = get(channel.__gpointer__, None)
        lib.spice_port_channel_write_async(pointer, ctypes.addressof(buf), len(data), None, None, None)
        emit("port-written", name=name, bytes=len(data))

    def on_agent_update(self, channel):
        emit("agent-update", connected=bool(channel.get_property("agent-connected")))

    def on_clipboard_grab(self, channel, selection, types, ntypes):
        # types: the ntypes VD_AGENT_CLIPBOARD_* the guest offers (PyGObject
        # hands the array over as a list).
        listed = [int(t) for t in types][:ntypes] if isinstance(types, (list, tuple)) else []
        if types and not listed:
            emit("error", message=f"clipboard grab types of type {type(types).__name__}")
        emit("clipboard-grab", selection=selection, ntypes=ntypes, types=listed)
        return True

    def on_clipboard_request(self, channel, selection, kind):
        text = self.clipboard_text.get(selection)
        emit("clipboard-request", selection=selection, type=kind, answered=text is not None)
        if text is None:
            return False
        channel.clipboard_selection_notify(selection, kind, list(text.encode("utf-8")))
        return True

    def on_clipboard_data(self, channel, selection, kind, data, size):
        raw = ctypes.string_at(data, size) if data and size else b""
        emit("clipboard-data", selection=selection, type=kind, text=raw.decode("utf-8", "replace"))

    def on_mouse_update(self, channel):
        emit("mouse-mode", mode=int(channel.get_property("mouse-mode")))

    def on_modifiers(self, channel):
        emit("key-modifiers", modifiers=int(channel.get_property("key-modifiers")))

    def on_cursor_set(self, channel, width, height, hot_x, hot_y, rgba):
        fields = dict(width=width, height=height, hot_x=hot_x, hot_y=hot_y)
        # rgba points to width * height * 4 bytes, valid during the signal.
        if isinstance(rgba, int) and rgba:
            fields["crc32"] = zlib.crc32(ctypes.string_at(rgba, width * height * 4))
        emit("cursor-set", **fields)

    def on_primary_create(self, channel, fmt, width, height, stride, shmid, address):
        channel_id = channel.get_property("channel-id")
        # The picture commands (checksum, dump, watch) read display 0's.
        if channel_id == 0:
            self.primary = (width, height, stride, address)
        emit("primary-create", format=fmt, width=width, height=height, stride=stride, channel_id=channel_id)

    def on_primary_destroy(self, channel):
        channel_id = channel.get_property("channel-id")
        if channel_id == 0:
            self.primary = None
        emit("primary-destroy", channel_id=channel_id)

    def on_invalidate(self, channel, x, y, w, h):
        self.invalidates += 1
        self.last_invalidate_us = now_us()
        if not self.quiet:
            emit("invalidate", x=x, y=y, w=w, h=h)
        if self.watching is not None and not self.check_scheduled:
            # Checked once the pending messages are drawn, and at most every
            # CHECK_MS: a check reads the whole surface, and a client busy
            # checking would slow down the server it measures. The time of the
            # last invalidate, not of the check, is what "frame-match" reports.
            self.check_scheduled = True
            wait_ms = max(0, CHECK_MS - (now_us() - self.last_check_us) // 1000)
            GLib.timeout_add(wait_ms, self.check_watch, priority=GLib.PRIORITY_DEFAULT_IDLE)

    # ---- benchmarks --------------------------------------------------------

    def surface_crc(self):
        width, height, stride, address = self.primary
        data = ctypes.string_at(address, stride * height)
        if stride != width * 4:
            data = b"".join(data[y * stride : y * stride + width * 4] for y in range(height))
        data = bytearray(data)
        data[3::4] = bytes(width * height)
        return zlib.crc32(data)

    def watch(self, crc, timeout):
        self.watching = (crc, now_us() + int(timeout * 1e6), 0, 0)
        self.check_scheduled = True
        self.check_watch()
        GLib.timeout_add(100, self.check_watch_timer)

    def check_watch_timer(self):
        if self.watching is None:
            return False
        if not self.check_scheduled:
            self.check_scheduled = True
            self.check_watch()
        return self.watching is not None

    def check_watch(self):
        self.check_scheduled = False
        if self.watching is None:
            return False
        crc, deadline, checks, last_miss = self.watching
        now = now_us()
        got = self.surface_crc() if self.primary is not None else None
        self.last_check_us = now
        checks += 1
        if got == crc:
            self.watching = None
            # The frame was complete when its last piece was drawn: the last
            # invalidate, unless none came since the last check that missed
            # (spice-gtk draws, then emits the signal from the main loop, so a
            # timer check can see the pixels first: then it is now).
            done = self.last_invalidate_us
            if done is None or done <= last_miss:
                done = now
            emit(
                "frame-match",
                crc=crc,
                t_done_us=done,
                t_match_us=now,
                t_last_invalidate_us=self.last_invalidate_us,
                t_connect_us=self.connect_us,
                invalidates=self.invalidates,
                checks=checks,
            )
        elif now >= deadline:
            self.watching = None
            emit("frame-timeout", crc=crc, got=got, invalidates=self.invalidates, checks=checks)
        else:
            self.watching = (crc, deadline, checks, now)
        return False

    def stats(self):
        channels = []
        for channel in self.channels:
            channels.append(
                dict(
                    type=type(channel).__name__,
                    id=channel.get_property("channel-id"),
                    total_read_bytes=channel.get_property("total-read-bytes"),
                )
            )
        emit("stats", channels=channels, invalidates=self.invalidates, t_us=now_us())

    def on_playback_start(self, channel, fmt, channels, rate):
        emit("playback-start", format=fmt, channels=channels, rate=rate)

    def on_playback_data(self, channel, address, size):
        # The pointer is valid only during the signal: copy the PCM now.
        data = ctypes.string_at(address, size)
        self.playback_pcm += data
        emit("playback-data", bytes=size, crc32=zlib.crc32(data), total=len(self.playback_pcm))

    def on_volume(self, channel, _pspec):
        # "volume" is a pointer to "nchannels" guint16 levels.
        count = channel.get_property("nchannels")
        address = channel.get_property("volume")
        levels = list(ctypes.cast(address, ctypes.POINTER(ctypes.c_uint16))[:count]) if address else []
        emit("playback-volume", volume=levels)

    def on_record_start(self, channel, fmt, channels, rate):
        emit("record-start", format=fmt, channels=channels, rate=rate)

    # ---- commands ----------------------------------------------------------

    def dump(self, path):
        if self.primary is None:
            emit("error", message="no primary surface")
            return
        width, height, stride, address = self.primary
        data = ctypes.string_at(address, stride * height)
        with open(path, "wb") as f:
            f.write(data)
        emit("dumped", path=path, width=width, height=height, stride=stride)

    def command(self, cmd):
        name = cmd["cmd"]
        if name == "connect":
            self.connect(
                cmd["uri"],
                cmd.get("password"),
                cmd.get("audio", False),
                cmd.get("quiet", False),
                cmd.get("cache_size"),
                cmd.get("props"),
            )
        elif name == "dump":
            self.dump(cmd["path"])
        elif name == "checksum":
            if self.primary is None:
                emit("error", message="no primary surface")
            else:
                emit("checksum", crc=self.surface_crc(), width=self.primary[0], height=self.primary[1])
        elif name == "watch":
            self.watch(int(cmd["crc"]), float(cmd.get("timeout", 60)))
        elif name == "stats":
            self.stats()
        elif name == "monitors":
            self.emit_monitors(self.display)
        elif name == "video_codecs":
            ok = Spice.DisplayChannel.display_channel_change_preferred_video_codec_types(
                self.display, [int(c) for c in cmd["codecs"]])
            emit("video-codecs", ok=bool(ok))
        elif name in ("key_press", "key_release"):
            getattr(Spice.InputsChannel, name)(self.inputs, cmd["code"])
        elif name == "position":
            Spice.InputsChannel.position(self.inputs, cmd["x"], cmd["y"], cmd.get("display", 0), cmd["buttons"])
        elif name == "motion":
            Spice.InputsChannel.motion(self.inputs, cmd["dx"], cmd["dy"], cmd["buttons"])
        elif name in ("button_press", "button_release"):
            getattr(Spice.InputsChannel, name)(self.inputs, cmd["button"], cmd["buttons"])
        elif name == "key_press_and_release":
            Spice.InputsChannel.key_press_and_release(self.inputs, cmd["code"])
        elif name == "session_info":
            uuid = self.session.get_property("uuid")
            emit(
                "session-info",
                name=self.session.get_property("name"),
                # The uuid property is a raw pointer to 16 bytes.
                uuid=ctypes.string_at(uuid, 16).hex() if uuid else None,
                mouse_mode=int(self.main.get_property("mouse-mode")) if self.main else None,
            )
        elif name == "set_key_locks":
            Spice.InputsChannel.set_key_locks(self.inputs, cmd["locks"])
        elif name == "monitors_config":
            # What a resized window does with "resize guest to window"; with
            # "displays" ([[x, y, width, height], ...]), what remote-viewer's
            # View > Displays menu does: those monitors enabled, in order.
            displays = cmd.get("displays") or [[0, 0, cmd["width"], cmd["height"]]]
            for i, (x, y, w, h) in enumerate(displays):
                self.main.update_display_enabled(i, True, False)
                self.main.update_display(i, x, y, w, h, False)
            sent = self.main.send_monitor_config()
            emit("monitors-config-sent", sent=bool(sent))
        elif name == "playback_dump":
            with open(cmd["path"], "wb") as f:
                f.write(self.playback_pcm)
            emit("playback-dumped", path=cmd["path"], bytes=len(self.playback_pcm))
            self.playback_pcm = bytearray()
        elif name == "record_send":
            data = bytes.fromhex(cmd["hex"])
            buf = ctypes.create_string_buffer(data, len(data))
            # spice-gtk copies the data and sends it in 1920-byte frames (480
            # stereo S16 frames); a partial frame waits for the next call.
            Spice.RecordChannel.send_data(self.record, ctypes.addressof(buf), len(data), cmd.get("time", 0))
            emit("record-sent", bytes=len(data))
        elif name == "clipboard_grab":
            selection = int(cmd.get("selection", 0))
            self.clipboard_text[selection] = cmd["text"]
            # VD_AGENT_CLIPBOARD_UTF8_TEXT
            self.main.clipboard_selection_grab(selection, [1])
        elif name == "clipboard_request":
            self.main.clipboard_selection_request(int(cmd.get("selection", 0)), int(cmd.get("type", 1)))
        elif name == "port_write":
            self.port_write(cmd["name"], bytes.fromhex(cmd["hex"]))
        elif name == "port_event":
            Spice.PortChannel.event(self.port(cmd["name"]), int(cmd["event"]))
        elif name == "disconnect":
            if self.session is not None:
                self.session.disconnect()
        elif name == "quit":
            self.loop.quit()
        else:
            emit("error", message="unknown command " + name)
        emit("done", cmd=name)

    def on_stdin(self, fd, condition):
        # Read raw bytes: a buffered readline() would hide queued lines from the fd watch.
        chunk = os.read(fd, 65536)
        if not chunk:
            self.loop.quit()
            return False
        self.pending += chunk
        while b"\n" in self.pending:
            line, self.pending = self.pending.split(b"\n", 1)
            line = line.strip()
            if not line:
                continue
            try:
                self.command(json.loads(line))
            except Exception as e:  # report, keep serving the test
                emit("error", message=repr(e))
        return True

    def run(self):
        self.pending = b""
        fd = sys.stdin.fileno()
        GLib.unix_fd_add_full(GLib.PRIORITY_DEFAULT, fd, GLib.IOCondition.IN | GLib.IOCondition.HUP, self.on_stdin)
        emit("ready")
        self.loop.run()


if __name__ == "__main__":
    Driver().run()
