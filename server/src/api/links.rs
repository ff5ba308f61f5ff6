//! Links handed on to someone else (a patient's visit link, a guest's invitation): absolute, so
//! that a QR code of one opens on another device, and drawn as a QR code.

use super::ctx::Ctx;
use super::error::ApiError;

/// `path` on the server as people reach it: the configured `public_url`, else the origin this
/// request addressed (a deployment behind a proxy sets `public_url`), else the path alone.
pub fn absolute(ctx: &Ctx, path: &str) -> String {
    match (&ctx.state.public_url, &ctx.own_origin) {
        (Some(base), _) => format!("{}{path}", base.trim_end_matches('/')),
        (None, Some(origin)) => format!("{origin}{path}"),
        (None, None) => path.to_owned(),
    }
}

/// A QR code of `text` as SVG (no script, no style: the client parses it as SVG).
pub fn qr_svg(text: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|_| ApiError::internal())?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}
