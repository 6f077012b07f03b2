//! Kernel times from timestamp queries (`TIMESTAMP_QUERY`, which lavapipe, SwiftShader and real
//! GPUs offer): every compute pass of a submission writes its start and end, resolved into a
//! buffer at the end of that submission and read back after it. The pass itself is unchanged —
//! one submission per pass as always — so these are the GPU's own times, without the fence per
//! op of [`crate::backend::profile::Profiled`]. Native only: reading them back blocks.

use crate::backend::profile::OpTime;
use crate::backend::BackendError;

/// Dispatches timed per submission: the recorder submits every `RING_SLOTS` dispatches anyway.
pub const CAPACITY: u32 = 1024;

/// The query set, its buffers, and the labels of the passes recorded since the last submission.
#[derive(Debug)]
pub struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// (entry, family, scope) of each timed pass of the open encoder.
    pending: Vec<(&'static str, &'static str, String)>,
    /// The scope [`crate::backend::Backend::scope`] last named.
    pub scope: String,
    done: Vec<OpTime>,
    period_ns: f64,
}

impl Timestamps {
    /// The query set and buffers on `device`.
    pub fn new(device: &wgpu::Device, queue: &wgpu::Queue) -> Self {
        let bytes = u64::from(2 * CAPACITY) * 8;
        let set = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2 * CAPACITY,
        });
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Timestamps {
            set,
            resolve: buffer("timestamps resolve", wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC),
            readback: buffer("timestamps readback", wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST),
            pending: Vec::new(),
            scope: String::new(),
            done: Vec::new(),
            period_ns: f64::from(queue.get_timestamp_period()),
        }
    }

    /// The timestamp writes of the next pass, labelled `entry` of `family`; `None` once this
    /// submission's queries are used up (the pass then runs untimed).
    pub fn next(&mut self, entry: &'static str, family: &'static str) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        let i = u32::try_from(self.pending.len()).ok().filter(|&i| i < CAPACITY)?;
        self.pending.push((entry, family, self.scope.clone()));
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        })
    }

    /// Appends the resolve and the copy to the readback buffer to the submission's encoder.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        let n = self.pending.len() as u32;
        if n > 0 {
            encoder.resolve_query_set(&self.set, 0..2 * n, &self.resolve, 0);
            encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, u64::from(2 * n) * 8);
        }
    }

    /// After the submission: reads the resolved times back (waiting for the GPU) and turns
    /// them into [`OpTime`]s.
    ///
    /// # Errors
    /// [`BackendError::Readback`] if the buffer cannot be mapped.
    pub fn collect(&mut self, device: &wgpu::Device) -> Result<(), BackendError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let slice = self.readback.slice(0..pending.len() as u64 * 16);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| BackendError::Readback(e.to_string()))?;
        #[cfg(target_arch = "wasm32")]
        let _ = device; // never timed in the browser (GpuBackend::has_kernel_timestamps)
        rx.recv()
            .map_err(|_| BackendError::Readback("the timestamp map callback was dropped".into()))?
            .map_err(|e| BackendError::Readback(e.to_string()))?;
        let ticks: Vec<u64> = {
            let data = slice.get_mapped_range().map_err(|e| BackendError::Readback(e.to_string()))?;
            data.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
        };
        self.readback.unmap();
        for ((entry, family, scope), t) in pending.into_iter().zip(ticks.chunks_exact(2)) {
            let seconds = t[1].saturating_sub(t[0]) as f64 * self.period_ns * 1e-9;
            self.done.push(OpTime { op: entry, family, scope, seconds });
        }
        Ok(())
    }

    /// The times collected so far, in order, and forgets them.
    pub fn take(&mut self) -> Vec<OpTime> {
        std::mem::take(&mut self.done)
    }
}
