//! `QXL_DRAW_STROKE`.
use spice_qxl::{Clip, Text};

use crate::draw::{Cx, Damage};
use crate::error::CanvasError;

pub(crate) fn draw(_cx: &mut Cx<'_, '_>, _clip: &Clip, _s: &Text) -> Result<Damage, CanvasError> {
    Err(CanvasError::Unsupported("text"))
}
