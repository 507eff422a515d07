//! Per-evaluation bump allocation: the module's global allocator in wasm.
//!
//! Everything one `validate` call allocates is dead when the call returns: the pod's
//! projection, the key tables, the lookups' answers, the plans, the answer's text (copied
//! out first). So while an evaluation runs, memory is handed out by bumping a pointer
//! through a chunk; nothing is freed one by one (except the latest block, taken back at
//! once), and the next evaluation reuses the whole chunk. What must outlive a call (the
//! settings cache) is allocated inside [`persistent`], by the system allocator. Outside an
//! evaluation every allocation is the system allocator's, so the waPC runtime's buffers
//! never land in a chunk. The rule that follows: a value made before an evaluation and kept
//! after it must not allocate during it, except inside [`persistent`] (the lookup a caller
//! hands in, for one: `admission::validate_text` runs it there). Measured (README,
//! Performance): about a tenth of a warm evaluation was malloc/free and the walks that free
//! the trees.
//!
//! [`Bump`] is the bookkeeping over plain addresses, tested on the host. The allocator is
//! global only in wasm, where an instance is single-threaded: that is what makes the `Cell`s
//! of a `static` sound. On the host (tests, tools) the same code runs but allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The first chunk. A chunk's untouched pages cost nothing: the memory grows once, and
/// pages are faulted in as the bump pointer reaches them.
const FIRST_CHUNK: usize = 256 * 1024;
/// Chunks one evaluation may open (each twice the size of the one before); beyond them,
/// the system allocator serves the rest of it.
const MAX_CHUNKS: usize = 16;

/// A bump region over address ranges obtained elsewhere: the current chunk, and the chunks
/// this evaluation filled before it.
pub struct Bump {
    start: Cell<usize>,
    end: Cell<usize>,
    /// The next free address in the current chunk.
    next: Cell<usize>,
    /// Start of the block handed out last: it can grow, shrink or be taken back in place.
    last: Cell<Option<usize>>,
    /// Earlier chunks of this evaluation, `(start, size)`, released by [`Bump::reset`].
    retired: [Cell<(usize, usize)>; MAX_CHUNKS],
    retired_count: Cell<usize>,
}

impl Default for Bump {
    fn default() -> Self {
        Self::new()
    }
}

impl Bump {
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)] // only copied into the array
        const NONE: Cell<(usize, usize)> = Cell::new((0, 0));
        Self {
            start: Cell::new(0),
            end: Cell::new(0),
            next: Cell::new(0),
            last: Cell::new(None),
            retired: [NONE; MAX_CHUNKS],
            retired_count: Cell::new(0),
        }
    }

    /// A block from the current chunk, or `None` when it does not fit.
    pub fn alloc(&self, layout: Layout) -> Option<usize> {
        if self.end.get() == 0 {
            return None;
        }
        let mask = layout.align() - 1;
        let aligned = self.next.get().checked_add(mask)? & !mask;
        let after = aligned.checked_add(layout.size())?;
        if after > self.end.get() {
            return None;
        }
        self.next.set(after);
        self.last.set(Some(aligned));
        Some(aligned)
    }

    fn in_current(&self, address: usize) -> bool {
        (self.start.get()..self.end.get()).contains(&address)
    }

    /// Whether `address` is in a chunk of this evaluation.
    pub fn owns(&self, address: usize) -> bool {
        self.in_current(address)
            || self.retired[..self.retired_count.get()]
                .iter()
                .any(|chunk| {
                    let (start, size) = chunk.get();
                    (start..start + size).contains(&address)
                })
    }

    /// Takes the block back if it is the last one handed out; any other stays used until
    /// the reset.
    pub fn free(&self, address: usize) {
        if self.last.get() == Some(address) {
            self.next.set(address);
            self.last.set(None);
        }
    }

    /// Gives the last block handed out a new size where it is, when it is `address` and the
    /// chunk has room.
    pub fn resize_in_place(&self, address: usize, new_size: usize) -> bool {
        if self.last.get() != Some(address) {
            return false;
        }
        match address.checked_add(new_size) {
            Some(after) if after <= self.end.get() => {
                self.next.set(after);
                true
            }
            _ => false,
        }
    }

    /// The size a new chunk for `layout` should have, or `None` when no more can be opened.
    pub fn next_chunk_size(&self, layout: Layout) -> Option<usize> {
        if self.end.get() != 0 && self.retired_count.get() == MAX_CHUNKS {
            return None;
        }
        let wanted = layout.size().checked_add(layout.align())?;
        let mut size = (2 * (self.end.get() - self.start.get())).max(FIRST_CHUNK);
        while size < wanted {
            size = size.checked_mul(2)?;
        }
        // A `Layout` cannot be larger; such a block is the system allocator's to refuse.
        (size <= isize::MAX as usize - EvaluationAllocator::CHUNK_ALIGN).then_some(size)
    }

    /// Makes `[start, start + size)` the current chunk and retires the one before (the
    /// caller asked [`Bump::next_chunk_size`] first, so there is room to record it).
    pub fn open_chunk(&self, start: usize, size: usize) {
        if self.end.get() != 0 {
            let count = self.retired_count.get();
            self.retired[count].set((self.start.get(), self.end.get() - self.start.get()));
            self.retired_count.set(count + 1);
        }
        self.start.set(start);
        self.end.set(start + size);
        self.next.set(start);
        self.last.set(None);
    }

    /// Empties the region for the next evaluation: keeps the current (largest) chunk and
    /// hands every earlier one to `release(start, size)`.
    pub fn reset(&self, mut release: impl FnMut(usize, usize)) {
        for chunk in &self.retired[..self.retired_count.get()] {
            let (start, size) = chunk.get();
            release(start, size);
        }
        self.retired_count.set(0);
        self.next.set(self.start.get());
        self.last.set(None);
    }

    /// Bytes handed out from the current chunk since the reset.
    pub fn used(&self) -> usize {
        self.next.get() - self.start.get()
    }
}

/// [`Bump`] while an evaluation runs, else [`System`]. Chunks come from [`System`].
pub struct EvaluationAllocator {
    bump: Bump,
    /// An evaluation is running and no [`persistent`] section is open.
    active: Cell<bool>,
}

// SAFETY: a wasm32-wasip1 instance runs one thread (the host uses a thread-local instead).
#[cfg(target_arch = "wasm32")]
unsafe impl Sync for EvaluationAllocator {}

impl Default for EvaluationAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl EvaluationAllocator {
    pub const fn new() -> Self {
        Self {
            bump: Bump::new(),
            active: Cell::new(false),
        }
    }

    /// The system allocator's own alignment on wasm32: a larger one sends chunks through
    /// `posix_memalign`, which allocates more and writes bookkeeping around the block.
    const CHUNK_ALIGN: usize = 8;

    /// The layout of a chunk; sizes come from [`Bump::next_chunk_size`], which keeps them
    /// valid (and no allocator may panic, so an invalid one is `None`, never a panic).
    fn chunk_layout(size: usize) -> Option<Layout> {
        Layout::from_size_align(size, Self::CHUNK_ALIGN).ok()
    }

    /// Opens a chunk that fits `layout`; `false` when the system allocator should serve it.
    unsafe fn open_chunk_for(&self, layout: Layout) -> bool {
        let Some((size, chunk_layout)) = self
            .bump
            .next_chunk_size(layout)
            .and_then(|size| Some((size, Self::chunk_layout(size)?)))
        else {
            return false;
        };
        let chunk = System.alloc(chunk_layout);
        if chunk.is_null() {
            return false;
        }
        self.bump.open_chunk(chunk as usize, size);
        true
    }

    /// Starts bump allocation (an evaluation begins).
    pub fn begin(&self) {
        self.active.set(true);
    }

    /// Stops bump allocation; the blocks handed out stay readable until [`Self::reset`].
    pub fn end(&self) {
        self.active.set(false);
    }

    /// Takes back every block of the evaluation.
    pub fn reset(&self) {
        self.bump.reset(|start, size| {
            // Every chunk was opened with this layout.
            if let Some(layout) = Self::chunk_layout(size) {
                unsafe { System.dealloc(start as *mut u8, layout) }
            }
        });
    }

    /// Bytes the evaluation has taken from the current chunk.
    pub fn used(&self) -> usize {
        self.bump.used()
    }
}

unsafe impl GlobalAlloc for EvaluationAllocator {
    // Not inlined: LTO would otherwise copy the bump path into every allocation site
    // (measured: +89 KB of module).
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.active.get() {
            if let Some(address) = self.bump.alloc(layout) {
                return address as *mut u8;
            }
            if self.open_chunk_for(layout) {
                if let Some(address) = self.bump.alloc(layout) {
                    return address as *mut u8;
                }
            }
        }
        System.alloc(layout)
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.bump.owns(ptr as usize) {
            self.bump.free(ptr as usize);
        } else {
            System.dealloc(ptr, layout)
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.bump.owns(ptr as usize) {
            return System.realloc(ptr, layout, new_size);
        }
        if self.bump.resize_in_place(ptr as usize, new_size) {
            return ptr;
        }
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
        }
        new
    }
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: EvaluationAllocator = EvaluationAllocator::new();

#[cfg(target_arch = "wasm32")]
fn with_allocator<R>(use_it: impl FnOnce(&EvaluationAllocator) -> R) -> R {
    use_it(&ALLOCATOR)
}

// On the host nothing allocates through it; one per thread keeps parallel tests apart.
#[cfg(not(target_arch = "wasm32"))]
thread_local! {
    static ALLOCATOR: EvaluationAllocator = const { EvaluationAllocator::new() };
}

#[cfg(not(target_arch = "wasm32"))]
fn with_allocator<R>(use_it: impl FnOnce(&EvaluationAllocator) -> R) -> R {
    ALLOCATOR.with(use_it)
}

/// Runs one evaluation on bump allocation. `copy_out` turns its result into values that
/// hold no block of it (it runs on the system allocator, before the blocks are taken back).
pub fn evaluation<T, R>(run: impl FnOnce() -> T, copy_out: impl FnOnce(T) -> R) -> R {
    with_allocator(EvaluationAllocator::begin);
    let result = run();
    with_allocator(EvaluationAllocator::end);
    let owned = copy_out(result);
    with_allocator(EvaluationAllocator::reset);
    owned
}

/// Runs `run` on the system allocator: what it allocates outlives the evaluation.
pub fn persistent<T>(run: impl FnOnce() -> T) -> T {
    let was_active = with_allocator(|a| a.active.replace(false));
    let result = run();
    with_allocator(|a| a.active.set(was_active));
    result
}

/// Lets go of `value`, allocated during the evaluation: where the arena is the global
/// allocator the reset takes its memory back, so walking it to free each block is skipped.
pub fn discard<T>(value: T) {
    if cfg!(target_arch = "wasm32") {
        std::mem::forget(value);
    } else {
        drop(value);
    }
}

/// Whether bump allocation is on (an evaluation runs, outside [`persistent`]).
pub fn bumping() -> bool {
    with_allocator(|a| a.active.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    fn bump_over(start: usize, size: usize) -> Bump {
        let bump = Bump::new();
        bump.open_chunk(start, size);
        bump
    }

    #[test]
    fn blocks_are_aligned_and_follow_each_other() {
        let bump = bump_over(1000, 100);
        assert_eq!(bump.alloc(layout(3, 1)), Some(1000));
        assert_eq!(bump.alloc(layout(8, 8)), Some(1008));
        assert_eq!(bump.alloc(layout(1, 1)), Some(1016));
        assert_eq!(bump.used(), 17);
        // 1017 → 1024 aligned, 1024 + 77 > 1100.
        assert_eq!(bump.alloc(layout(77, 8)), None);
        assert_eq!(bump.alloc(layout(76, 8)), Some(1024));
        assert_eq!(bump.alloc(layout(1, 1)), None);
    }

    #[test]
    fn no_chunk_no_block() {
        assert_eq!(Bump::new().alloc(layout(1, 1)), None);
        assert!(!Bump::new().owns(0));
    }

    #[test]
    fn only_the_last_block_is_taken_back_or_resized() {
        let bump = bump_over(0x1000, 0x100);
        let a = bump.alloc(layout(16, 8)).unwrap();
        let b = bump.alloc(layout(16, 8)).unwrap();
        bump.free(a);
        assert_eq!(bump.used(), 32, "a block before the last stays used");
        assert!(!bump.resize_in_place(a, 64));
        assert!(bump.resize_in_place(b, 64));
        assert_eq!(bump.used(), 16 + 64);
        assert!(bump.resize_in_place(b, 8), "shrinking in place");
        assert_eq!(bump.used(), 24);
        assert!(!bump.resize_in_place(b, 0x100), "past the chunk's end");
        bump.free(b);
        assert_eq!(bump.used(), 16);
        bump.free(b);
        assert_eq!(bump.used(), 16, "a block is taken back once");
        assert_eq!(bump.alloc(layout(4, 4)), Some(b));
    }

    #[test]
    fn chunks_double_and_reset_keeps_the_largest() {
        let bump = Bump::new();
        assert_eq!(bump.next_chunk_size(layout(8, 8)), Some(FIRST_CHUNK));
        bump.open_chunk(0x10_0000, FIRST_CHUNK);
        assert_eq!(
            bump.next_chunk_size(layout(8, 8)),
            Some(2 * FIRST_CHUNK),
            "twice the current chunk"
        );
        assert_eq!(
            bump.next_chunk_size(layout(5 * FIRST_CHUNK, 8)),
            Some(8 * FIRST_CHUNK),
            "large enough for the block"
        );
        bump.open_chunk(0x100_0000, 2 * FIRST_CHUNK);
        assert!(bump.owns(0x10_0000 + 5), "a retired chunk is still owned");
        assert!(bump.owns(0x100_0000 + 2 * FIRST_CHUNK - 1));
        assert!(!bump.owns(0x100_0000 + 2 * FIRST_CHUNK));
        assert!(!bump.owns(0x10));
        bump.alloc(layout(100, 1)).unwrap();
        let mut released = Vec::new();
        bump.reset(|start, size| released.push((start, size)));
        assert_eq!(released, vec![(0x10_0000, FIRST_CHUNK)]);
        assert_eq!(bump.used(), 0);
        assert!(!bump.owns(0x10_0000), "released");
        assert_eq!(bump.alloc(layout(1, 1)), Some(0x100_0000));
    }

    #[test]
    fn a_bounded_number_of_chunks() {
        let bump = Bump::new();
        for i in 0..=MAX_CHUNKS {
            assert!(bump.next_chunk_size(layout(1, 1)).is_some(), "chunk {i}");
            bump.open_chunk(0x1000 * (i + 1), 0x10);
        }
        assert_eq!(bump.next_chunk_size(layout(1, 1)), None);
        let mut released = 0;
        bump.reset(|_, _| released += 1);
        assert_eq!(released, MAX_CHUNKS);
        assert!(bump.next_chunk_size(layout(1, 1)).is_some());
    }

    #[test]
    fn the_allocator_bumps_only_while_active_and_frees_system_blocks_always() {
        let allocator = EvaluationAllocator::new();
        unsafe {
            let before = allocator.alloc(layout(32, 8));
            assert!(!allocator.bump.owns(before as usize), "inactive: system");
            allocator.begin();
            let a = allocator.alloc(layout(100, 8));
            assert!(allocator.bump.owns(a as usize));
            a.write_bytes(7, 100);
            // Growing the last block keeps it in place, with its bytes.
            let grown = allocator.realloc(a, layout(100, 8), 300);
            assert_eq!(grown, a);
            let b = allocator.alloc(layout(10, 2));
            // `a` is no longer the last: growing copies it.
            let moved = allocator.realloc(a, layout(300, 8), 400);
            assert_ne!(moved, a);
            assert_eq!(std::slice::from_raw_parts(moved, 100), &[7u8; 100][..]);
            // A system block freed during an evaluation goes back to the system.
            allocator.dealloc(before, layout(32, 8));
            let system = allocator.realloc(System.alloc(layout(16, 8)), layout(16, 8), 64);
            assert!(
                !allocator.bump.owns(system as usize),
                "system blocks stay system"
            );
            allocator.dealloc(system, layout(64, 8));
            // Larger than the chunk: a second chunk, twice as large.
            let big = allocator.alloc(layout(FIRST_CHUNK + 1, 8));
            assert!(allocator.bump.owns(big as usize));
            assert!(allocator.bump.owns(b as usize));
            allocator.end();
            let after = allocator.alloc(layout(8, 8));
            assert!(
                !allocator.bump.owns(after as usize),
                "inactive again: system"
            );
            allocator.dealloc(after, layout(8, 8));
            allocator.reset();
            assert_eq!(allocator.used(), 0);
            assert!(
                !allocator.bump.owns(b as usize),
                "the first chunk was released"
            );
            assert!(
                allocator.bump.owns(big as usize),
                "the largest chunk is kept"
            );
        }
    }

    #[test]
    fn persistent_sections_suspend_the_evaluation() {
        assert!(!bumping());
        let seen = evaluation(
            || (bumping(), persistent(bumping), bumping()),
            |seen| (seen, bumping()),
        );
        assert_eq!(seen, ((true, false, true), false));
        assert!(!bumping());
    }
}
