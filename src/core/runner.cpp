#include "corio/runners.hpp"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "corio/debug.hpp"
#include "corio/detail/asyncgen_record.hpp"
#include "corio/executor.hpp"

namespace corio {

Runner::Runner(RunOptions options) : options_(std::move(options)) {}

Runner::~Runner() {
    try {
        close();
    } catch (...) {
    }
}

EventLoop& Runner::get_loop() {
    if (closed_) throw std::logic_error("Runner is closed");
    if (!loop_) {
        loop_ = std::make_unique<EventLoop>(std::move(options_.backend));
        if (options_.debug) loop_->set_debug(true);
        if (options_.slow_callback_duration) loop_->slow_callback_duration = *options_.slow_callback_duration;
        const char* env = std::getenv("CORIO_INTROSPECT");
        if (options_.introspect) {
            detail::enable_introspection(*loop_);
        } else if (env && *env && std::string(env) != "0") {
            // Asked for from outside, as a debugging aid: a socket that cannot be made (a path
            // taken in a shared /tmp, a read-only directory) must not stop the program.
            try {
                detail::enable_introspection(*loop_);
            } catch (const std::exception&) {
                loop_->call_exception_handler({"CORIO_INTROSPECT: no introspection endpoint; the program runs without it",
                                               std::current_exception(), {}, {}, {}});
            }
        }
    }
    return *loop_;
}

EventLoop& Runner::prepare_run() {
    if (detail::running_loop())
        throw std::logic_error("corio::run() cannot be called from a running event loop");
    return get_loop();
}

struct Runner::Interrupts {
    int count = 0;
    int last_signal = 0;
    // The first signal found main done (or gone): run() or close() throws KeyboardInterrupt.
    bool undelivered = false;
};

namespace {
std::atomic<int> g_runner_interrupt{0};
}  // namespace

int detail::take_runner_interrupt() noexcept { return g_runner_interrupt.exchange(0); }

void Runner::watch_signals(detail::TaskBase* main) {
    if (!watched_.empty() || !options_.handle_sigint || ::gettid() != ::getpid()) return;
    if (main) EventLoop::restart_fallback_signal_count();  // this run's signals, not the last run's
    // Shared with the handlers: a copy already queued by a signal may run after they are
    // cleared (in the shutdown's ticks).
    auto seen = interrupts_;
    for (int sig : {SIGINT, SIGTERM}) {
        struct sigaction current {};
        ::sigaction(sig, nullptr, &current);
        if (current.sa_handler != SIG_DFL) continue;  // somebody else handles it (or ignores it)
        std::optional<AnyTask> target;
        if (main) target.emplace(main);
        loop_->set_fallback_signal_handler(sig, [this, target, sig, seen]() mutable {
            seen->last_signal = sig;
            g_runner_interrupt.store(sig);
            if (++seen->count == 1) {
                if (target && !target->done()) {
                    target->cancel();
                    return;
                }
                seen->undelivered = true;
                // During the shutdown: what still runs (a slow cleanup) is cancelled again.
                if (shutting_down_) loop_->tasks().for_each([](detail::TaskBase& t) { t.cancel({}); });
                return;
            }
            // A second signal: the user means it.
            loop_->clear_fallback_signal_handler(sig);
            ::raise(sig);
        });
        watched_.push_back(sig);
    }
}

void Runner::unwatch_signals() noexcept {
    for (int sig : watched_) loop_->clear_fallback_signal_handler(sig);
    watched_.clear();
}

void Runner::run_main(detail::TaskBase& main) {
    interrupts_ = std::make_shared<Interrupts>();
    watch_signals(&main);
    // corio::run's close() follows at once: unwatched there, so that no signal in between finds
    // the default disposition.
    struct Unwatch {
        Runner& r;
        ~Unwatch() {
            if (!r.closes_after_run_) r.unwatch_signals();
        }
    } unwatch{*this};
    // asyncio stops the run from main's first done callback, which runs a tick later: the whole
    // of that tick runs first (what main's last step woke, started or scheduled, the timers
    // then due), and only then the shutdown cancels what is left. Unless a stop() came in main's
    // last tick: the loop stops after it, and that callback never runs.
    if (!loop_->run_until([&] { return main.done(); })) {
        loop_->stop();
        loop_->run_forever();
    }
    // A signal still in the pipe is this run's (a later run would find it, and be cancelled).
    if (!closes_after_run_) take_pending_signals();
    if (interrupts_->count > 0 && main.cancelled() && main.uncancel() == 0) {
        main.mark_retrieved();
        throw KeyboardInterrupt(interrupts_->last_signal);
    }
    // A signal handled as main finished (asyncio's _on_sigint raises KeyboardInterrupt then):
    // corio::run's close() throws it, after the shutdown.
    if (interrupts_->undelivered && !closes_after_run_) {
        interrupts_->undelivered = false;
        throw KeyboardInterrupt(interrupts_->last_signal);
    }
}

void Runner::cancel_all_tasks() {
    if (loop_->is_closed()) return;  // closed by hand: nothing can run any more
    std::vector<AnyTask> cancelled;
    std::unordered_set<detail::TaskBase*> seen;
    for (;;) {
        while (!loop_->tasks().empty()) {
            loop_->tasks().for_each([&](detail::TaskBase& t) {
                if (seen.insert(&t).second) {
                    cancelled.emplace_back(&t);
                    t.cancel({});
                }
            });
            loop_->run_until([&] {
                for (auto& t : cancelled)
                    if (!t.done()) return false;
                return true;
            });
        }
        // What the completions scheduled runs too (done callbacks: a run_coroutine_threadsafe
        // future's answer, a user's add_done_callback, the main task's own), as asyncio's gather
        // over the cancelled tasks completes only after them. The ready queue is FIFO: once this
        // marker has run, so have they. A task they start is cancelled in turn.
        auto flushed = std::make_shared<bool>(false);  // the marker may outlive a failed run
        loop_->call_soon([flushed] { *flushed = true; });
        loop_->run_until([&] { return *flushed; });
        if (loop_->tasks().empty()) break;
    }
    for (auto& t : cancelled) {
        if (t.cancelled()) continue;
        if (auto e = t.exception()) {
            loop_->call_exception_handler(
                {"unhandled exception during corio::run() shutdown", e, t.name(), t.state()->creation_site(), {}});
        }
    }
}

void Runner::shutdown_asyncgens() {
    // asyncio's shutdown_asyncgens: every generator still suspended is closed, once (one that
    // ignores GeneratorExit is reported, not retried). Closing one may drop or first iterate
    // others: those are closed too, and so are the closers their drops started.
    auto closer_at_work = [this] {
        bool any = false;
        loop_->async_gens().for_each([&](detail::AsyncGenRecord& g) { any = any || g.closing; });
        return any;
    };
    for (;;) {
        std::vector<detail::AsyncGenRecord*> records;
        loop_->async_gens().for_each([&](detail::AsyncGenRecord& g) {
            if (g.wants_closing()) records.push_back(&g);
        });
        if (records.empty() && !closer_at_work()) break;
        std::vector<Task<>> closers;
        for (auto* g : records)
            closers.push_back(detail::spawn(*loop_, g->close_from_loop(), "asyncgen-close", std::source_location::current()));
        loop_->run_until([&] {
            for (auto& t : closers)
                if (!t.done()) return false;
            return !closer_at_work();
        });
        for (auto& t : closers) {
            if (t.cancelled()) continue;
            if (auto e = t.exception())
                loop_->call_exception_handler(
                    {"an error occurred during closing of asynchronous generator", e, {}, {}, {}});
        }
    }
}

void Runner::close() {
    if (closed_) return;
    // Refused before anything changes (asyncio 3.11's cancels every task first, the caller
    // included, then raises): the runner stays usable, and a later close() cancels its tasks.
    if (loop_ && loop_->is_running()) throw std::logic_error("Cannot close a running event loop");
    closed_ = true;
    if (!loop_) return;
    // The loop closes even when the shutdown could not run (on a thread its io_uring ring
    // refuses): its close() lets go of what the tasks still hold, and the error comes after.
    // Ctrl-C is watched through the shutdown too (asyncio's runner puts back Python's handler,
    // which raises KeyboardInterrupt): a signal that comes now cancels what still runs, and
    // close() then throws KeyboardInterrupt; a second one ends the process.
    // KeyboardInterrupt wins over an error of the shutdown itself (a stop() during it).
    if (!interrupts_) interrupts_ = std::make_shared<Interrupts>();
    shutting_down_ = true;
    std::exception_ptr failure;
    try {
        if (!loop_->is_closed()) watch_signals(nullptr);  // a loop closed by hand runs nothing more
        cancel_all_tasks();
        shutdown_asyncgens();
    } catch (...) {
        failure = std::current_exception();
    }
    loop_->shutdown_default_executor();
    try {
        take_pending_signals();
    } catch (...) {
        if (!failure) failure = std::current_exception();
    }
    unwatch_signals();
    loop_->close();
    loop_.reset();
    if (interrupts_->undelivered) {
        interrupts_->undelivered = false;
        throw KeyboardInterrupt(interrupts_->last_signal);
    }
    if (failure) std::rethrow_exception(failure);
}

void Runner::close_after_failure() {
    try {
        close();
    } catch (const KeyboardInterrupt&) {
        throw;
    } catch (...) {
    }
}

void Runner::take_pending_signals() {
    if (watched_.empty() || loop_->is_closed() || !loop_->read_pending_signals()) return;
    // The handlers it queued run before this marker (the ready queue is FIFO).
    auto flushed = std::make_shared<bool>(false);
    loop_->call_soon([flushed] { *flushed = true; });
    loop_->run_until([&] { return *flushed; });
}

}  // namespace corio
