// Fds that other threads let go of while this loop may know them (a socket closed, released or
// moved to another loop): queued under the inbox lock, forgotten (and closed) on the loop's own
// thread, at its next tick, as it stops running, or when it next runs or closes.
#include <unistd.h>

#include <mutex>
#include <new>

#include "corio/loop.hpp"

namespace corio {

bool EventLoop::hand_off_fd(int fd, FdHandOffMode mode) noexcept {
    // Decided under the lock that stopping takes too: a loop that runs now forgets (and
    // closes) the fd at its next tick or as it stops, never later.
    std::lock_guard lock(inbox_mutex_);
    if (closed_.load(std::memory_order_relaxed)) return false;
    const bool close_it = mode == FdHandOffMode::Close ||
                          (mode == FdHandOffMode::CloseIfRunning && running_.load(std::memory_order_relaxed));
    try {
        fd_hand_offs_.push_back({fd, close_it});
    } catch (const std::bad_alloc&) {
        return false;  // no memory: the loop keeps what it knew of the fd
    }
    // Woken whenever the flag goes up, as push_threadsafe does: a loop starting to run may
    // have read the flag down already, and would otherwise sleep with it stuck up (every later
    // push_threadsafe would then skip its wake-up too).
    if (!inbox_nonempty_.exchange(true, std::memory_order_acq_rel)) backend_->wakeup();
    return close_it;
}

void EventLoop::forget_handed_off_fds(std::vector<FdHandOff>& fds) noexcept {
    for (const FdHandOff& h : fds) {
        backend_->release_fd(h.fd);
        if (h.close_it) ::close(h.fd);
    }
    fds.clear();
}

}  // namespace corio
