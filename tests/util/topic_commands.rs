//! A handler driven by text commands, for the topic tests (tests/pubsub.rs, tests/redis.rs).

use volley::{Context, Handler, Message};

/// Text commands: `sub T`, `unsub T` (answered with `sub T true|false`, `unsub T …`),
/// `pub T M`, `others T M`, `local T M`, `all M`, `allothers M`, `count T` (answered with
/// `count T N`), `topics` (answered with `topics A,B`), `user U` (`Context::set_user`, `user -`
/// unties; answered with `user U`); a binary message is published as it is on topic `bin`.
pub struct TopicCommands;

impl Handler for TopicCommands {
    fn on_message(&mut self, ctx: &mut Context<'_>, msg: Message) {
        let Some(text) = msg.as_text().map(str::to_owned) else {
            ctx.publish("bin", msg);
            return;
        };
        let mut parts = text.splitn(3, ' ');
        let (verb, a, b) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        match verb {
            "sub" => {
                let r = ctx.subscribe(a);
                let _ = ctx.send(format!("sub {a} {r}"));
            }
            "unsub" => {
                let r = ctx.unsubscribe(a);
                let _ = ctx.send(format!("unsub {a} {r}"));
            }
            "pub" => ctx.publish(a, b),
            "others" => ctx.publish_others(a, b),
            "local" => ctx.publish_local(a, b),
            "all" => ctx.broadcast(a.to_string()),
            "allothers" => ctx.broadcast_others(a.to_string()),
            "count" => {
                let n = ctx.subscriber_count(a);
                let _ = ctx.send(format!("count {a} {n}"));
            }
            "user" => {
                ctx.set_user(Some(a).filter(|u| *u != "-"));
                let _ = ctx.send(format!("user {}", ctx.user().unwrap_or("-")));
            }
            "topics" => {
                let mut t = ctx.topics();
                t.sort();
                let _ = ctx.send(format!("topics {}", t.join(",")));
            }
            _ => {}
        }
    }
}
