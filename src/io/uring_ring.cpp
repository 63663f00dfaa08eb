#include "uring_ring.hpp"

#if defined(CORIO_HAVE_IO_URING)
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace corio::detail::uring {

Ring::Ring(unsigned buffer_count, unsigned buffer_size) : buffer_count_(buffer_count), buffer_size_(buffer_size) {
    open();
    setup_buffers();
}

Ring::~Ring() {
    io_uring_queue_exit(&ring_);  // before buffers_ goes: the kernel lets go of them here
}

void Ring::open() {
    // Deferred task work (6.1): the kernel completes our operations only when we ask for
    // completions, never by interrupting the thread as its other syscalls return (the streams'
    // sends): on W4 level with COOP_TASKRUN on a quiet machine, 3 % ahead on a loaded one (the
    // loop is interrupted less). It requires a single issuer: the thread that first uses the
    // ring (it starts disabled, take_over() turns it on), since a loop may be built on one
    // thread and run on another. CORIO_IO_URING_DEFER_TASKRUN=0 keeps the older setup (tests
    // use it: there, completions can land at any syscall, as on kernels before 6.1).
    const char* defer = std::getenv("CORIO_IO_URING_DEFER_TASKRUN");
    io_uring_params params{};
    params.flags = IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED;
    int rc = defer && std::strcmp(defer, "0") == 0 ? -EINVAL : io_uring_queue_init_params(1024, &ring_, &params);
    if (rc == -EINVAL) {
        params = io_uring_params{};
        params.flags = IORING_SETUP_COOP_TASKRUN;
        rc = io_uring_queue_init_params(1024, &ring_, &params);
        deferred_ = disabled_ = false;
    } else {
        deferred_ = disabled_ = rc == 0;
    }
    if (rc == -EINVAL) {
        params = io_uring_params{};
        rc = io_uring_queue_init_params(1024, &ring_, &params);
    }
    if (rc < 0) throw std::system_error(-rc, std::generic_category(), "io_uring_queue_init");
}

void Ring::setup_buffers() noexcept {
    // Refused (kernel before 5.19, or a sandbox): one-shot receives, as before.
    if (buffer_count_ != 0) buffers_.setup(ring_, buffer_count_, buffer_size_);
}

void Ring::replace() {
    io_uring old = ring_;
    const bool deferred = deferred_, disabled = disabled_;
    try {
        open();
    } catch (...) {
        ring_ = old;  // still this loop's ring
        deferred_ = deferred;
        disabled_ = disabled;
        throw;
    }
    // A deferred ring runs none of its operations once its owner stops asking: its receives
    // write nothing after this (the kernel drops them as the ring goes), so the buffers may go.
    io_uring_queue_exit(&old);
    buffers_.release();
    setup_buffers();
}

bool Ring::take_over(bool idle) {
    if (owned_here()) return false;
    bool replaced = false;
    if (!disabled_) {
        if (!idle)
            throw std::logic_error(
                "corio: an io_uring loop with I/O in flight cannot run on another thread (its ring accepts one "
                "submitting thread); run it where it ran, or let its I/O finish first");
        replace();
        replaced = true;
        if (!deferred_) return true;
    }
    // The raw call: liburing 2.3's shared library does not export io_uring_enable_rings.
    if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) < 0)
        throw std::system_error(errno, std::generic_category(), "io_uring_register(ENABLE_RINGS)");
    disabled_ = false;
    owner_ = this_thread_serial();
    return replaced;
}

io_uring_sqe* Ring::next_sqe() {
    io_uring_sqe* sqe = try_sqe();
    if (!sqe) throw std::system_error(EBUSY, std::generic_category(), "io_uring_get_sqe");
    return sqe;
}

}  // namespace corio::detail::uring

#endif
