//! MQTT over WebSockets at `/$iothub/websocket` (sub-protocol `mqtt`), as the SDKs use on port 443:
//! binary frames are bridged to an in-memory pipe served by the same MQTT session code.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::state::Hub;

const PIPE: usize = 64 * 1024;

pub(crate) async fn upgrade(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let (response, mut session, frames) = actix_ws::handle_with_protocols(&request, body, &["mqtt", "MQTT"])?;
    let max_frame = hub.config.limits.max_message_bytes + 64 * 1024;
    let mut frames = frames
        .max_frame_size(max_frame)
        .aggregate_continuations()
        .max_continuation_size(max_frame);
    let (mqtt_side, bridge_side) = tokio::io::duplex(PIPE);
    let (mut from_device, mut to_device) = tokio::io::split(bridge_side);
    let hub = Arc::clone(hub.get_ref());
    actix_web::rt::spawn(crate::mqtt::serve_connection(mqtt_side, "mqtt_ws", hub));

    // Device → hub: binary frames into the pipe.
    let mut control = session.clone();
    actix_web::rt::spawn(async move {
        while let Some(frame) = frames.next().await {
            match frame {
                Ok(AggregatedMessage::Binary(bytes)) => {
                    if to_device.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Ok(AggregatedMessage::Ping(payload)) => {
                    if control.pong(&payload).await.is_err() {
                        break;
                    }
                }
                Ok(AggregatedMessage::Pong(_)) => {}
                Ok(AggregatedMessage::Text(_)) => {
                    let reason = CloseReason {
                        code: CloseCode::Unsupported,
                        description: Some("MQTT uses binary frames".into()),
                    };
                    let _ = control.close(Some(reason)).await;
                    break;
                }
                Ok(AggregatedMessage::Close(_)) | Err(_) => break,
            }
        }
        let _ = to_device.shutdown().await;
    });

    // Hub → device: whatever the session writes, as binary frames.
    actix_web::rt::spawn(async move {
        let mut buffer = vec![0u8; PIPE];
        loop {
            match from_device.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if session
                        .binary(bytes::Bytes::copy_from_slice(&buffer[..n]))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = session.close(None).await;
    });
    Ok(response)
}
