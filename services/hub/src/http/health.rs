//! Endpoint health like IoT Hub's `GET .../routingEndpointsHealth`: ARM's `EndpointHealthData`
//! list under `value`. Needs a ServiceConnect policy.

use std::sync::Arc;
use std::time::SystemTime;

use actix_web::{HttpRequest, HttpResponse, web};

use super::{ApiError, authorization, require_api_version};
use crate::config::Right;
use crate::state::Hub;

pub(crate) async fn endpoints_health(
    hub: web::Data<Arc<Hub>>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    require_api_version(&request)?;
    hub.auth
        .service(authorization(&request), Right::ServiceConnect, SystemTime::now())
        .map_err(ApiError::from)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "value": hub.routing.health() })))
}
