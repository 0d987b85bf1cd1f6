//! The arithmetic the encoder's dense layers use on the CPU.

use crate::error::{Error, Result};
use candle_core::Device;

/// How the encoder's dense layers multiply. Recorded with every store and cache, since
/// the two give slightly different vectors.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum EncoderPrecision {
    /// f32 throughout: the vectors sentence-transformers gives (cosine >= 0.9999).
    #[default]
    F32,
    /// The dense layers' products in bfloat16 on Intel AMX tiles (Xeon, Sapphire Rapids
    /// or later), sums in f32; attention, norms and pooling stay f32. Several times
    /// faster there; vectors within about 1e-3 in cosine of the f32 ones.
    Bf16,
}

impl EncoderPrecision {
    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            EncoderPrecision::F32 => "f32",
            EncoderPrecision::Bf16 => "bf16",
        }
    }

    /// Parses `f32` or `bf16`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "f32" => Ok(EncoderPrecision::F32),
            "bf16" => Ok(EncoderPrecision::Bf16),
            other => Err(Error::InvalidArgument(format!(
                "unknown encoder precision {other:?} (choose f32 or bf16)"
            ))),
        }
    }

    /// Refuses a precision this machine cannot run exactly as described.
    pub fn check(self, device: &Device) -> Result<()> {
        match self {
            EncoderPrecision::F32 => Ok(()),
            EncoderPrecision::Bf16 if !device.is_cpu() => Err(Error::InvalidArgument(
                "bf16 encoder precision runs on the CPU's AMX tiles; on a GPU use f32".into(),
            )),
            EncoderPrecision::Bf16 if !crate::amx::available() => Err(Error::InvalidArgument(
                "bf16 encoder precision needs a CPU with AMX bf16 tiles (Intel Xeon, \
                     Sapphire Rapids or later, on Linux); this one has none: use f32"
                    .into(),
            )),
            EncoderPrecision::Bf16 => Ok(()),
        }
    }

    /// The fastest precision this machine runs: bf16 where AMX tiles exist, else f32.
    pub fn fastest(device: &Device) -> Self {
        if EncoderPrecision::Bf16.check(device).is_ok() {
            EncoderPrecision::Bf16
        } else {
            EncoderPrecision::F32
        }
    }
}

impl std::fmt::Display for EncoderPrecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
