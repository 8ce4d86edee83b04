//! The change subscription: `SUBSCRIBE <prefix>changes` on a connection of its own,
//! re-established when it drops, following the primary behind Sentinel.

use std::sync::Arc;
use std::time::Duration;

use crate::conn::Connection;

/// How often a subscription behind Sentinel checks that its node is still the primary.
/// A primary killed closes the subscription at once; one cut off or stopped does not,
/// and after a failover it would otherwise never hear another change.
const PRIMARY_CHECK: Duration = Duration::from_secs(5);

/// Subscribes to `channel` until aborted. Every (re)subscription calls `listener`
/// once: changes published while the connection was down were not heard.
pub(crate) async fn listen_loop(
    conn: Arc<Connection>,
    channel: String,
    token: Arc<str>,
    listener: apscheduler_core::ChangeListener,
) {
    use futures_util::StreamExt as _;
    let mut warned = false;
    loop {
        // Behind Sentinel, each subscription asks for the current primary.
        let subscribed = match conn.client().await {
            Ok(client) => match client.get_async_pubsub().await {
                Ok(mut pubsub) => pubsub
                    .subscribe(&channel)
                    .await
                    .map(|()| (pubsub, client.get_connection_info().addr().clone()))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match subscribed {
            Ok((mut pubsub, addr)) => {
                tracing::debug!(target: "apscheduler", channel = %channel, %addr, "Redis: subscribed to changes");
                warned = false;
                listener();
                let mut messages = pubsub.on_message();
                let mut check = tokio::time::interval(PRIMARY_CHECK);
                check.tick().await;
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                if message.get_payload_bytes() != token.as_bytes() {
                                    listener();
                                }
                            }
                            None => break,
                        },
                        _ = check.tick(), if conn.follows_sentinel() => {
                            let moved = match conn.client().await {
                                Ok(primary) => *primary.get_connection_info().addr() != addr,
                                // Not known now: keep listening, check again later.
                                Err(_) => false,
                            };
                            if moved {
                                apscheduler_core::log_warn!(target: "apscheduler", channel = %channel, "Redis: the primary moved from {addr}; subscribing to changes on the new one");
                                break;
                            }
                        }
                    }
                }
                // The connection dropped or the primary moved: plan again, then
                // subscribe again.
                listener();
            }
            Err(e) if !warned => {
                warned = true;
                apscheduler_core::log_warn!(target: "apscheduler", channel = %channel, "Redis: change notifications lost ({e}); retrying every second, and planning again once back");
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
