#pragma once
// run_loops(pin_threads) pins each loop's thread to one CPU. What a loop starts for other work,
// to_thread's workers and subprocesses, must not inherit that CPU: they would compete with the
// loop, and with each other, on it. They get the mask the thread had before it was pinned.
#include <sched.h>

namespace corio::detail {

// This thread is now pinned; `unpinned` is the mask it had before.
void note_pinned(const cpu_set_t& unpinned) noexcept;
// This thread has its old mask back.
void forget_pinned() noexcept;
// The mask for a thread this one starts (nullptr when this one is not pinned).
const cpu_set_t* unpinned_affinity() noexcept;

// Gives this thread its unpinned mask while alive, so that a process spawned meanwhile inherits
// that (posix_spawn has no attribute for it); nothing when the thread is not pinned. Two
// sched_setaffinity calls a spawn, only on pinned loops: small beside the spawn itself.
class UnpinnedWhile {
public:
    UnpinnedWhile() noexcept;
    ~UnpinnedWhile();
    UnpinnedWhile(const UnpinnedWhile&) = delete;
    UnpinnedWhile& operator=(const UnpinnedWhile&) = delete;

private:
    bool changed_ = false;
    cpu_set_t pinned_;
};

}  // namespace corio::detail
