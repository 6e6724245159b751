//! The guest agent link with the real spice-gtk client and a scripted agent.

use std::time::Duration;

use spice_interop::agent::{announce_capabilities, cap, clipboard_grab, FakeAgent};
use spice_interop::gtk::SpiceGtk;
use spice_interop::pattern::Canvas;
use spice_proto::agent::{message_type, PORT_CLIENT, PORT_SERVER};
use spice_server::{DisplayHandle, ServerBuilder};

const T: Duration = Duration::from_secs(20);

#[test]
fn agent_messages_flow_both_ways_with_tokens() {
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    Canvas::new(64, 48, 1).publish(&display);
    let agent = FakeAgent::new();
    let server = ServerBuilder::new()
        .port(0)
        .display(display)
        .agent(agent.clone())
        .spawn()
        .unwrap();
    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);

    // Client to guest: spice-gtk announces its capabilities once it sees the agent.
    let caps = agent.wait_for(T, |r| {
        r.port == PORT_CLIENT && r.message_type == message_type::ANNOUNCE_CAPABILITIES
    });
    assert!(
        caps.is_some(),
        "client capabilities reached the agent: {:?}",
        agent.received()
    );

    // Guest to client.
    let wanted = [
        cap::MONITORS_CONFIG,
        cap::CLIPBOARD_BY_DEMAND,
        cap::CLIPBOARD_SELECTION,
    ];
    agent.send(
        message_type::ANNOUNCE_CAPABILITIES,
        &announce_capabilities(false, &wanted),
    );
    server.handle().agent_wakeup();
    assert!(gtk
        .wait(T, |v| v["event"] == "agent-update" && v["connected"] == true)
        .is_some());

    // Far more messages than the client's tokens: all arrive, in order, as tokens return.
    for _ in 0..60 {
        agent.send(message_type::CLIPBOARD_GRAB, &clipboard_grab(0, &[1]));
    }
    server.handle().agent_wakeup();
    let mut grabs = 0;
    while grabs < 60 {
        if gtk.wait(T, |v| v["event"] == "clipboard-grab").is_none() {
            break;
        }
        grabs += 1;
    }
    assert_eq!(grabs, 60, "every grab reached the client");
    assert_eq!(agent.unread(), 0);

    // The agent goes and comes back while the client stays.
    server.handle().set_agent(None);
    assert!(gtk
        .wait(T, |v| v["event"] == "agent-update" && v["connected"] == false)
        .is_some());
    let again = FakeAgent::new();
    server.handle().set_agent(Some(Box::new(again.clone())));
    assert!(gtk
        .wait(T, |v| v["event"] == "agent-update" && v["connected"] == true)
        .is_some());
    assert!(
        again
            .wait_for(T, |r| r.message_type == message_type::ANNOUNCE_CAPABILITIES)
            .is_some(),
        "client re-announced to the new agent"
    );

    // When the client leaves, the agent hears about it on the server port.
    gtk.quit();
    let bye = again.wait_for(T, |r| {
        r.port == PORT_SERVER && r.message_type == message_type::CLIENT_DISCONNECTED
    });
    assert!(
        bye.is_some(),
        "agent told of the client's departure: {:?}",
        again.received()
    );
}

#[test]
fn agent_moves_the_pointer_in_client_mode_without_a_tablet() {
    use serde_json::json;
    spice_interop::init_logging();
    let display = DisplayHandle::new();
    Canvas::new(64, 48, 2).publish(&display);
    let agent = FakeAgent::new();
    // No tablet: client mouse mode is possible only through the agent.
    let server = ServerBuilder::new()
        .port(0)
        .display(display)
        .agent(agent.clone())
        .spawn()
        .unwrap();
    let mut gtk = SpiceGtk::start();
    gtk.connect(server.local_addr(), None);
    gtk.wait_inputs_ready(Some(2), T);
    gtk.send(json!({"cmd": "position", "x": 30, "y": 20, "buttons": 0}));
    gtk.send(json!({"cmd": "button_press", "button": 1, "buttons": 1}));
    let state = |r: &spice_interop::agent::Received, buttons: u32| {
        r.port == PORT_SERVER
            && r.message_type == message_type::MOUSE_STATE
            && r.data.len() == 13
            && r.data[..4] == 30u32.to_le_bytes()
            && r.data[4..8] == 20u32.to_le_bytes()
            && r.data[8..12] == buttons.to_le_bytes()
    };
    assert!(
        agent.wait_for(T, |r| state(r, 0)).is_some(),
        "position: {:?}",
        agent.received()
    );
    assert!(
        agent.wait_for(T, |r| state(r, 2)).is_some(),
        "left button as the agent's bit 1"
    );

    // Agent mouse off: no client mode without a tablet.
    server.handle().set_agent_mouse(false);
    assert!(gtk
        .wait(T, |v| v["event"] == "mouse-mode" && v["mode"] == 1)
        .is_some());
    gtk.quit();
}
