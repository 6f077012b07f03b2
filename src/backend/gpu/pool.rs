//! Buffer pool: storage buffers are recycled by size class when their last tensor drops, so
//! repeated forward passes allocate nothing new on the device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

type FreeLists = Mutex<HashMap<u64, Vec<wgpu::Buffer>>>;

/// Recycles storage buffers by size class.
#[derive(Debug, Default)]
pub struct BufferPool {
    free: Arc<FreeLists>,
    created: std::sync::atomic::AtomicUsize,
}

/// A storage buffer on loan from the pool; goes back to it on drop.
#[derive(Debug)]
pub struct PooledBuffer {
    buffer: wgpu::Buffer,
    class: u64,
    home: Weak<FreeLists>,
}

impl PooledBuffer {
    /// The wgpu buffer (its size is the class, at least the bytes asked for).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(free) = self.home.upgrade() {
            if let Ok(mut free) = free.lock() {
                free.entry(self.class).or_default().push(self.buffer.clone());
            }
        }
    }
}

/// The size class of a request: rounded up to an eighth of its power of two (at most 12.5%
/// waste), at least 256 bytes.
pub fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let pow = bytes.next_power_of_two();
    let step = (pow / 8).max(256);
    bytes.div_ceil(step) * step
}

impl BufferPool {
    /// A buffer of at least `bytes` (a multiple of 4), reused when one is free.
    pub fn take(&self, device: &wgpu::Device, bytes: u64) -> PooledBuffer {
        let class = size_class(bytes);
        let reused = self.free.lock().ok().and_then(|mut f| f.get_mut(&class).and_then(Vec::pop));
        let buffer = reused.unwrap_or_else(|| {
            self.created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("tokenclip tensor"),
                size: class,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        PooledBuffer { buffer, class, home: Arc::downgrade(&self.free) }
    }

    /// Number of device buffers this pool has ever created.
    pub fn created(&self) -> usize {
        self.created.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every free buffer, returning its memory to the device; buffers on loan are
    /// untouched. (The browser build shares one backend between models: a freed model's weights
    /// must not stay in the pool.)
    pub fn release_free(&self) {
        if let Ok(mut free) = self.free.lock() {
            free.clear();
        }
    }

    /// Number of free buffers waiting for reuse.
    pub fn free_buffers(&self) -> usize {
        self.free.lock().map(|f| f.values().map(Vec::len).sum()).unwrap_or(0)
    }
}
