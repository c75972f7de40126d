//! Users over real sockets: connections tied to a user id (`Context::set_user`) are reached by
//! user with `ServerHandle::send_to_user` and closed with `disconnect_user`, on every worker;
//! other users' connections are not touched; untying and closing stop it. Across nodes through
//! Redis: tests/redis.rs.

mod util;

use util::topic_commands::TopicCommands;
use util::*;
use volley::{CloseCode, Request, Upgrade};

fn as_user(c: &mut Client, user: &str) {
    c.send_text(&format!("user {user}"));
    assert_eq!(c.recv_text(), format!("user {user}"));
}

#[test]
fn send_to_user_reaches_every_connection_of_that_user_and_no_other() {
    let s = TestServer::start(config(), |_r: &Request<'_>| Upgrade::accept(TopicCommands));
    // Four connections over the two workers: ann twice, bob once, one without a user.
    let mut ann1 = Client::connect(s.addr);
    let mut ann2 = Client::connect(s.addr);
    let mut bob = Client::connect(s.addr);
    let mut nobody = Client::connect(s.addr);
    as_user(&mut ann1, "ann");
    as_user(&mut ann2, "ann");
    as_user(&mut bob, "bob");
    assert_eq!(s.handle.user_connections("ann"), 2);
    s.handle.send_to_user("ann", "hi ann");
    assert_eq!(ann1.recv_text(), "hi ann");
    assert_eq!(ann2.recv_text(), "hi ann");
    s.handle.send_to_user("bob", "hi bob");
    assert_eq!(bob.recv_text(), "hi bob");
    assert!(
        ann1.silent_for(100) && nobody.silent_for(50),
        "only the user's own"
    );
    // Internal topics stay out of listings.
    ann1.send_text("topics");
    assert_eq!(ann1.recv_text(), "topics ");
    assert!(s.handle.topics().is_empty(), "{:?}", s.handle.topics());
    // Untied: no longer reached.
    as_user(&mut ann2, "-");
    s.handle.send_to_user("ann", "again");
    assert_eq!(ann1.recv_text(), "again");
    assert!(ann2.silent_for(100));
    assert_eq!(s.handle.user_connections("ann"), 1);
}

#[test]
fn disconnect_user_closes_every_connection_of_that_user_with_its_code() {
    let s = TestServer::start(config(), |_r: &Request<'_>| Upgrade::accept(TopicCommands));
    let mut ann1 = Client::connect(s.addr);
    let mut ann2 = Client::connect(s.addr);
    let mut bob = Client::connect(s.addr);
    as_user(&mut ann1, "ann");
    as_user(&mut ann2, "ann");
    as_user(&mut bob, "bob");
    s.handle
        .disconnect_user("ann", CloseCode(4003), "signed out elsewhere");
    for c in [&mut ann1, &mut ann2] {
        let f = c.expect_close().expect("a close frame with a code");
        assert_eq!(
            (f.code, f.reason.as_str()),
            (CloseCode(4003), "signed out elsewhere")
        );
    }
    // Bob is still served.
    s.handle.send_to_user("bob", "still here");
    assert_eq!(bob.recv_text(), "still here");
    wait_until(5, "ann's connections gone", || {
        s.handle.user_connections("ann") == 0
    });
}
