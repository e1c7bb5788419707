//! Device-to-cloud over HTTPS: `POST /devices/{id}/messages/events`, authorised by the device's SAS
//! token; `iothub-app-*` headers become application properties. 204 once the message is durable.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::{HttpRequest, HttpResponse, web};
use iothub_protocol::Message;
use iothub_protocol::https::apply_header;

use super::{ApiError, authorization, require_api_version};
use crate::ingest::IngestError;
use crate::metrics::{MessageLabel, OutcomeLabel};
use crate::state::Hub;

pub(crate) async fn send_event(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    require_api_version(&request)?;
    let token =
        authorization(&request).ok_or_else(|| ApiError::from(crate::auth::Refusal::MissingCredentials))?;
    let identity = hub
        .auth
        .device(&id, None, token, SystemTime::now())
        .map_err(|refusal| {
            hub.metrics
                .connects
                .get_or_create(&OutcomeLabel {
                    outcome: refusal.label(),
                })
                .inc();
            tracing::info!(device_id = %id, reason = refusal.label(), "HTTPS telemetry refused");
            ApiError::from(refusal)
        })?;
    let mut message = Message::new(body.to_vec());
    for (name, value) in request.headers() {
        if let Ok(value) = value.to_str() {
            apply_header(&mut message, name.as_str(), value);
        }
    }
    let label = MessageLabel {
        transport: "https",
        qos: "1",
    };
    match hub.ingest.accept(&identity, message, label).await {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(error @ IngestError::TooLarge { .. }) => Err(ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_large",
            error.to_string(),
        )),
        Err(error) => Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            error.label(),
            "the hub cannot store the message now; retry later",
        )),
    }
}
