//! Choosing the compute device. CPU always works; CUDA and Metal exist when bftembed
//! is built with the `cuda` or `metal` feature, and every stage takes the device it is given.

use crate::error::{Error, Result};
use candle_core::Device;

/// Parses `cpu`, `cuda`, `cuda:N`, `metal` or `auto` (the best device this build has).
pub fn parse_device(name: &str) -> Result<Device> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if candle_core::utils::cuda_is_available() {
                Ok(Device::new_cuda(0)?)
            } else if candle_core::utils::metal_is_available() {
                Ok(Device::new_metal(0)?)
            } else {
                Ok(Device::Cpu)
            }
        }
        "metal" => Ok(Device::new_metal(0)?),
        _ => {
            if let Some(rest) = lower.strip_prefix("cuda") {
                let ordinal = rest.trim_start_matches(':');
                let ordinal = if ordinal.is_empty() {
                    0
                } else {
                    ordinal.parse::<usize>().map_err(|_| {
                        Error::InvalidArgument(format!("device '{name}': expected cuda:N"))
                    })?
                };
                Ok(Device::new_cuda(ordinal)?)
            } else {
                Err(Error::InvalidArgument(format!(
                    "unknown device '{name}' (use cpu, cuda, cuda:N, metal or auto)"
                )))
            }
        }
    }
}

/// Fixes the CPU thread count for the whole process. candle asks for it on every CPU
/// matrix product and, when `RAYON_NUM_THREADS` is unset, re-reads `/proc/cpuinfo` each
/// time: about 9% of generation time. Setting the variable once, to the value candle
/// would compute, removes that cost. Call early in `main`, before other threads start.
pub fn pin_cpu_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = candle_core::utils::get_num_threads();
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}
