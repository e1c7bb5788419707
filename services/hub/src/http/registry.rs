//! The registry REST API in IoT Hub's shape: `PUT/GET/DELETE /devices/{id}`, `GET /devices`,
//! authorised by a service SAS token of a policy with registry rights.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{ApiError, authorization, require_api_version};
use crate::config::Right;
use crate::registry::{DeviceRequest, Status};
use crate::state::Hub;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    top: Option<usize>,
}

fn authorize(hub: &Hub, request: &HttpRequest, right: Right) -> Result<(), ApiError> {
    require_api_version(request)?;
    hub.auth
        .service(authorization(request), right, SystemTime::now())
        .map(|_| ())
        .map_err(|refusal| {
            tracing::info!(reason = refusal.label(), path = %request.path(), "registry call refused");
            ApiError::from(refusal)
        })
}

fn if_match(request: &HttpRequest) -> Option<String> {
    request
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn with_etag(device: &crate::registry::Device) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", device.etag)))
        .json(device)
}

pub(crate) async fn put_device(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    authorize(&hub, &request, Right::RegistryWrite)?;
    let device_request: DeviceRequest = if body.is_empty() {
        DeviceRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", format!("the device JSON: {e}")))?
    };
    let id = id.into_inner();
    let if_match = if_match(&request);
    let registry = Arc::clone(&hub.registry);
    let (device, created) =
        web::block(move || registry.create_or_update(&id, device_request, if_match.as_deref()))
            .await
            .map_err(|e| ApiError::internal(&e))??;
    if device.status == Status::Disabled {
        hub.live.revoke_device(&device.device_id);
    }
    tracing::info!(device_id = %device.device_id, created, "device saved");
    if created {
        let _ = hub
            .ingest
            .emit(crate::notifications::lifecycle(
                &hub.config.hub_name,
                &device,
                true,
            ))
            .await;
    }
    Ok(with_etag(&device))
}

pub(crate) async fn get_device(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&hub, &request, Right::RegistryRead)?;
    let device = hub
        .registry
        .get(&id)
        .ok_or_else(|| crate::registry::RegistryError::NotFound(id.into_inner()))?;
    Ok(with_etag(&device))
}

pub(crate) async fn list_devices(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    authorize(&hub, &request, Right::RegistryRead)?;
    Ok(HttpResponse::Ok().json(hub.registry.list(query.top.unwrap_or(1000))))
}

pub(crate) async fn delete_device(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    authorize(&hub, &request, Right::RegistryWrite)?;
    let id = id.into_inner();
    let if_match = if_match(&request);
    let registry = Arc::clone(&hub.registry);
    let device_id = id.clone();
    let deleted = web::block(move || registry.delete(&device_id, if_match.as_deref()))
        .await
        .map_err(|e| ApiError::internal(&e))??;
    let _ = hub
        .ingest
        .emit(crate::notifications::lifecycle(
            &hub.config.hub_name,
            &deleted,
            false,
        ))
        .await;
    hub.live.revoke_device(&id);
    tracing::info!(device_id = %id, "device deleted");
    Ok(HttpResponse::NoContent().finish())
}
