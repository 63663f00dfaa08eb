// Signal handlers that run on the loop. The OS-level handler only writes the signal's number
// into the loop's self-pipe (async-signal-safe); the loop reads the pipe like any other fd and
// schedules the Python-level handler with call_soon. A self-pipe rather than signalfd: it works
// whichever thread the kernel delivers the signal to, without masking it in every thread.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <cerrno>
#include <map>
#include <system_error>

#include "corio/loop.hpp"

namespace corio {

namespace detail {

namespace {
std::atomic<int> g_signal_pipe[NSIG];
std::once_flag g_init;

void init_table() {
    for (auto& fd : g_signal_pipe) fd.store(-1, std::memory_order_relaxed);
}

// A signal's disposition is the process's: one loop at a time may handle it.
bool claim_signal(int sig, int write_fd) noexcept {
    int expected = -1;
    return g_signal_pipe[sig].compare_exchange_strong(expected, write_fd, std::memory_order_acq_rel);
}
// Only the loop that holds it lets it go; called after the old disposition is back, so a signal
// in between still reaches this loop instead of being dropped.
void release_signal(int sig, int write_fd) noexcept {
    int expected = write_fd;
    g_signal_pipe[sig].compare_exchange_strong(expected, -1, std::memory_order_acq_rel);
}

extern "C" void on_signal(int sig) {
    int saved = errno;
    int fd = g_signal_pipe[sig].load(std::memory_order_relaxed);
    if (fd >= 0) {
        unsigned char byte = static_cast<unsigned char>(sig);
        ssize_t ignored = ::write(fd, &byte, 1);  // a full pipe already holds a wake-up
        (void)ignored;
    }
    errno = saved;
}
}  // namespace

struct SignalState {
    EventLoop* loop = nullptr;
    int read_fd = -1;
    int write_fd = -1;
    IoOperation op;
    unsigned char buffer[64];
    bool reading = false;
    std::map<int, std::function<void()>> handlers;
    std::map<int, struct sigaction> previous;

    void start_read() {
        op = IoOperation{};
        op.kind = IoOperation::Kind::Read;
        op.fd = read_fd;
        op.buffer = buffer;
        op.length = sizeof buffer;
        op.complete = &SignalState::on_read;
        op.user = this;
        reading = true;
        loop->internal_io_started();
        loop->backend().submit(op);
    }

    static void on_read(IoOperation* op, long r) noexcept {
        auto* self = static_cast<SignalState*>(op->user);
        self->reading = false;
        self->loop->internal_io_finished();
        if (r == -ECANCELED) return;
        for (long i = 0; i < r; ++i) {
            auto it = self->handlers.find(self->buffer[i]);
            if (it == self->handlers.end()) continue;
            try {
                self->loop->call_soon(it->second);
            } catch (...) {
            }
        }
        try {
            self->start_read();
        } catch (...) {
            self->loop->call_exception_handler({"cannot watch the signal pipe any more", std::current_exception(), {}, {}, {}});
        }
    }

    ~SignalState() {
        for (auto& [sig, old] : previous) {
            ::sigaction(sig, &old, nullptr);
            release_signal(sig, write_fd);
        }
        if (reading) loop->internal_io_finished();
        loop->backend().release_fd(read_fd);
        ::close(read_fd);
        ::close(write_fd);
    }
};

void destroy_signal_state(SignalState* s) noexcept { delete s; }

}  // namespace detail

void EventLoop::add_signal_handler(int sig, std::function<void()> handler) {
    check_open();
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
        throw std::invalid_argument("add_signal_handler: signal " + std::to_string(sig) + " cannot be handled");
    std::call_once(detail::g_init, detail::init_table);
    if (!signals_) {
        int fds[2];
        if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) throw std::system_error(errno, std::generic_category(), "pipe2");
        signals_.reset(new detail::SignalState);
        signals_->loop = this;
        signals_->read_fd = fds[0];
        signals_->write_fd = fds[1];
        signals_->start_read();
    }
    if (!signals_->previous.count(sig)) {
        struct sigaction sa {};
        sa.sa_handler = &detail::on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        // The entry first (it may throw): once the signal is claimed and installed, nothing fails.
        struct sigaction& old = signals_->previous[sig];
        if (!detail::claim_signal(sig, signals_->write_fd)) {
            signals_->previous.erase(sig);
            throw std::logic_error("add_signal_handler: signal " + std::to_string(sig) +
                                   " is already handled by another event loop");
        }
        if (::sigaction(sig, &sa, &old) < 0) {
            int error = errno;
            detail::release_signal(sig, signals_->write_fd);
            signals_->previous.erase(sig);
            throw std::system_error(error, std::generic_category(), "sigaction");
        }
    }
    signals_->handlers[sig] = std::move(handler);
}

bool EventLoop::remove_signal_handler(int sig) {
    if (!signals_ || !signals_->handlers.count(sig)) return false;
    signals_->handlers.erase(sig);
    auto it = signals_->previous.find(sig);
    if (it != signals_->previous.end()) {
        ::sigaction(sig, &it->second, nullptr);
        detail::release_signal(sig, signals_->write_fd);
        signals_->previous.erase(it);
    }
    return true;
}

}  // namespace corio
