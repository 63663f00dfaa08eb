// Signal handlers that run on the loop. The OS-level handler only writes the signal's number
// into the loop's self-pipe (async-signal-safe); the loop reads the pipe like any other fd and
// schedules the Python-level handler with call_soon. A self-pipe rather than signalfd: it works
// whichever thread the kernel delivers the signal to, without masking it in every thread.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <cerrno>
#include <cstdint>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "corio/loop.hpp"

namespace corio {

namespace detail {

extern std::atomic<void (*)()> signal_handler_test_pause;

namespace {
std::atomic<int> g_signal_pipe[NSIG];
std::once_flag g_init;
// OS-level handlers between reading a pipe's fd and writing to it, on any thread. A loop closes
// its pipe only once this is back to zero after letting its signals go: a handler that read
// the fd just before could otherwise write its byte into whatever file took the number next.
std::atomic<int> g_handlers_running{0};

// The runner's Ctrl-C handling (a fallback handler that no application handler hides): a
// second signal ends the process. Counted here, as the signals arrive, and not only on the
// loop: a loop blocked by the program (a blocking call, a deadlock, a busy step) never reads
// its pipe, and asyncio's second Ctrl-C interrupts even that (its handler raises
// KeyboardInterrupt in whatever the main thread runs). One count for SIGINT and SIGTERM, as the
// runner's, from the start of a run; it may lag the runner's (it starts again when an
// application's handler hands a signal back), never run ahead of it.
std::atomic<bool> g_second_ends_process[NSIG];
std::atomic<int> g_fallback_arrivals{0};

void init_table() {
    for (auto& fd : g_signal_pipe) fd.store(-1, std::memory_order_relaxed);
    for (auto& armed : g_second_ends_process) armed.store(false, std::memory_order_relaxed);
}

// Async-signal-safe: sigaction and raise. The signal is blocked while its handler runs, so it
// is delivered, with the default action, as the handler returns.
void end_process_by(int sig) noexcept {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    ::raise(sig);
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
    g_signal_pipe[sig].compare_exchange_strong(expected, -1, std::memory_order_seq_cst);
}

void wait_for_running_handlers() noexcept {
    while (g_handlers_running.load(std::memory_order_seq_cst) != 0) ::sched_yield();
}

extern "C" void on_signal(int sig) {
    int saved = errno;
    // Both sequentially consistent, against release_signal's exchange and the wait above: a
    // handler whose load saw the fd has been counted before the loop looks at the count.
    g_handlers_running.fetch_add(1, std::memory_order_seq_cst);
    int fd = g_signal_pipe[sig].load(std::memory_order_seq_cst);
    if (fd >= 0) {
        if (auto pause = signal_handler_test_pause.load(std::memory_order_relaxed)) pause();
        unsigned char byte = static_cast<unsigned char>(sig);
        ssize_t ignored = ::write(fd, &byte, 1);  // a full pipe already holds a wake-up
        (void)ignored;
    }
    const bool second = g_second_ends_process[sig].load(std::memory_order_seq_cst) &&
                        g_fallback_arrivals.fetch_add(1, std::memory_order_seq_cst) >= 1;
    g_handlers_running.fetch_sub(1, std::memory_order_release);
    if (second) end_process_by(sig);
    errno = saved;
}
}  // namespace

// Tests park a handler between its read of the fd and its write (tests/test_signals.cpp).
std::atomic<void (*)()> signal_handler_test_pause{nullptr};

struct SignalState {
    EventLoop* loop = nullptr;
    int read_fd = -1;
    int write_fd = -1;
    IoOperation op;
    unsigned char buffer[64];
    std::uint64_t bytes_read = 0;  // read_pending_signals() tells whether any came
    bool reading = false;
    bool stopping = false;  // the read was cancelled because no signal is handled any more
    std::map<int, std::function<void()>> handlers;
    std::map<int, struct sigaction> previous;
    // The runner's own handlers (Ctrl-C): what a signal falls back to when the application's
    // handler is removed (asyncio's remove_signal_handler(SIGINT) restores default_int_handler,
    // which the runner turns into KeyboardInterrupt).
    std::map<int, std::function<void()>> fallback;
    std::set<int> applications;  // the signals the application added a handler for

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

    // No signal is handled any more: the read stops, so that the loop keeps nothing of its own
    // in the backend (an io_uring loop with I/O in flight cannot move to another thread).
    void stop_read() noexcept {
        if (!reading || stopping) return;
        try {
            loop->backend().cancel(op);
            stopping = true;
        } catch (...) {
            // The ring refused the cancel: the read stays, as it always did.
        }
    }

    static void on_read(IoOperation* op, long r) noexcept {
        auto* self = static_cast<SignalState*>(op->user);
        self->reading = false;
        self->loop->internal_io_finished();
        const bool stopped = std::exchange(self->stopping, false);
        if (r == -ECANCELED && !stopped) return;  // the loop closes
        // Stopped, it starts again if a signal was added while the cancel was on its way.
        if (self->previous.empty()) return;
        if (r > 0) self->bytes_read += std::uint64_t(r);
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
            g_second_ends_process[sig].store(false, std::memory_order_seq_cst);
            ::sigaction(sig, &old, nullptr);
            release_signal(sig, write_fd);
        }
        // Before either end closes: a late write to a pipe without a reader would raise SIGPIPE.
        wait_for_running_handlers();  // also for a signal removed earlier
        if (reading) loop->internal_io_finished();
        loop->backend().release_fd(read_fd);
        ::close(read_fd);
        ::close(write_fd);
    }
};

void destroy_signal_state(SignalState* s) noexcept { delete s; }

}  // namespace detail

void EventLoop::add_signal_handler(int sig, std::function<void()> handler) {
    install_signal(sig);
    signals_->handlers[sig] = std::move(handler);
    signals_->applications.insert(sig);
    detail::g_second_ends_process[sig].store(false, std::memory_order_seq_cst);  // the application's now
}

bool EventLoop::remove_signal_handler(int sig) {
    if (!signals_ || !signals_->applications.count(sig)) return false;
    signals_->applications.erase(sig);
    if (auto f = signals_->fallback.find(sig); f != signals_->fallback.end()) {
        signals_->handlers[sig] = f->second;  // the runner's Ctrl-C handling comes back
        // A signal counted while the application's handler was being added went to that
        // handler: counting again from zero never ends the process on a first Ctrl-C.
        detail::g_fallback_arrivals.store(0, std::memory_order_seq_cst);
        detail::g_second_ends_process[sig].store(true, std::memory_order_seq_cst);
        return true;
    }
    uninstall_signal(sig);
    return true;
}

void EventLoop::set_fallback_signal_handler(int sig, std::function<void()> handler) {
    install_signal(sig);
    if (!signals_->applications.count(sig)) signals_->handlers[sig] = handler;
    signals_->fallback[sig] = std::move(handler);
    detail::g_second_ends_process[sig].store(!signals_->applications.count(sig), std::memory_order_seq_cst);
}

void EventLoop::restart_fallback_signal_count() noexcept { detail::g_fallback_arrivals.store(0, std::memory_order_seq_cst); }

bool EventLoop::read_pending_signals() {
    if (!signals_ || !signals_->reading || is_closed()) return false;
    const std::uint64_t before = signals_->bytes_read;
    backend_->poll(std::chrono::nanoseconds(0));
    return signals_->bytes_read != before;
}

void EventLoop::clear_fallback_signal_handler(int sig) noexcept {
    if (!signals_ || !signals_->fallback.erase(sig)) return;
    detail::g_second_ends_process[sig].store(false, std::memory_order_seq_cst);
    // An application's handler stays (asyncio's runner leaves a loop handler alone too).
    if (!signals_->applications.count(sig)) uninstall_signal(sig);
}

void EventLoop::install_signal(int sig) {
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
    }
    if (!signals_->reading) {  // new, or stopped with the last signal
        // What came while no signal was handled is dropped, as the running read would have
        // dropped it (asyncio's _handle_signal finds no handler): not given to this one.
        if (signals_->previous.empty())
            while (::read(signals_->read_fd, signals_->buffer, sizeof signals_->buffer) > 0) {
            }
        signals_->start_read();
    }
    if (signals_->previous.count(sig)) return;
    struct sigaction sa {};
    sa.sa_handler = &detail::on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    // The entry first (it may throw): once the signal is claimed and installed, nothing fails.
    struct sigaction& old = signals_->previous[sig];
    if (!detail::claim_signal(sig, signals_->write_fd)) {
        signals_->previous.erase(sig);
        stop_signal_read_if_unused();
        throw std::logic_error("add_signal_handler: signal " + std::to_string(sig) +
                               " is already handled by another event loop");
    }
    if (::sigaction(sig, &sa, &old) < 0) {
        int error = errno;
        detail::release_signal(sig, signals_->write_fd);
        signals_->previous.erase(sig);
        stop_signal_read_if_unused();
        throw std::system_error(error, std::generic_category(), "sigaction");
    }
}

// The previous disposition comes back.
void EventLoop::uninstall_signal(int sig) noexcept {
    signals_->handlers.erase(sig);
    auto it = signals_->previous.find(sig);
    if (it != signals_->previous.end()) {
        ::sigaction(sig, &it->second, nullptr);
        detail::release_signal(sig, signals_->write_fd);
        signals_->previous.erase(it);
    }
    stop_signal_read_if_unused();
}

void EventLoop::stop_signal_read_if_unused() noexcept {
    if (!signals_->previous.empty()) return;
    signals_->stop_read();
    // Between runs (the runner's Ctrl-C handling goes as a run ends), now; during one, its next
    // poll, or the end of the run.
    if (!running_) collect_stopped_signal_read();
}

void EventLoop::collect_stopped_signal_read() noexcept {
    for (int i = 0; i < 100 && signals_ && signals_->stopping; ++i) {
        try {
            backend_->poll(std::chrono::milliseconds(i == 0 ? 0 : 1));
        } catch (...) {
            break;
        }
    }
}

}  // namespace corio
