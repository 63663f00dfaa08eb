// EventLoop: one per thread, asyncio's loop. A FIFO ready queue, a timer heap, a thread-safe
// inbox (call_soon_threadsafe) and an I/O backend behind corio/backend.hpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "corio/backend.hpp"
#include "corio/clock.hpp"
#include "corio/detail/callback.hpp"
#include "corio/detail/intrusive_list.hpp"
#include "corio/detail/ready_ring.hpp"

namespace corio {

class EventLoop;
class ThreadPool;
template <class T = void>
class Future;

namespace detail {
class TaskBase;
class ThreadJob;
struct WaitNode;
struct AllTasksTag;
struct AsyncGenTag;
struct AsyncGenRecord;

// A deadline in the loop's timer heap. Timers with equal deadlines fire in the order they
// were set (asyncio leaves that undefined; corio makes it part of the contract).
// 24 bytes: every sleeping task carries one in its frame.
struct TimerNode {
    static constexpr std::uint32_t npos = ~std::uint32_t(0);
    Clock::time_point when{};
    // Order of arming, compared modulo 2^32 (serial-number arithmetic): ties are only ever broken
    // between timers armed less than 2^31 arms apart.
    std::uint32_t seq = 0;
    std::uint32_t heap_index = npos;
    void (*fire)(TimerNode*) = nullptr;
    bool armed() const noexcept { return heap_index != npos; }
};

// The timer heap's order: by deadline, then by order of arming.
inline bool fires_before(const TimerNode& a, const TimerNode& b) noexcept {
    return a.when < b.when || (a.when == b.when && std::int32_t(a.seq - b.seq) < 0);
}

struct CallbackNode;
struct TimerCallbackNode;

// What a pool thread reaches the loop through, instead of the loop itself: a call may finish
// after its loop has been closed and destroyed (a pool of the application's outlives it).
// close() clears `loop` under `mutex`; each job shares ownership of the gate.
struct LoopGate {
    explicit LoopGate(EventLoop* l) noexcept : loop(l) {}
    std::mutex mutex;
    EventLoop* loop;
};
struct SignalState;
void destroy_signal_state(SignalState* s) noexcept;

// A clock the loop reads instead of the real one (corio::testing::MockClock).
struct VirtualTime {
    Clock::time_point now{};
};

EventLoop* running_loop() noexcept;
}  // namespace detail

// What the exception handler receives (asyncio's `context` dict).
struct ExceptionContext {
    std::string message;
    std::exception_ptr exception;
    std::string task_name;                       // empty when no task is involved
    std::optional<std::source_location> location;  // where the task was created, or the coroutine defined
    std::string call_graph;                       // the await chain, where one applies
    bool location_is_definition = false;          // location: a never-awaited coroutine's definition
};

// asyncio.Handle: a scheduled callback that can still be cancelled.
class Handle {
public:
    Handle() = default;
    explicit Handle(detail::CallbackNode* n) noexcept;
    Handle(const Handle&);
    Handle& operator=(Handle);
    ~Handle();
    void cancel() noexcept;
    bool cancelled() const noexcept;

private:
    detail::CallbackNode* node_ = nullptr;
};

// asyncio.TimerHandle.
class TimerHandle {
public:
    TimerHandle() = default;
    explicit TimerHandle(detail::TimerCallbackNode* n) noexcept;
    TimerHandle(const TimerHandle&);
    TimerHandle& operator=(TimerHandle);
    ~TimerHandle();
    void cancel() noexcept;
    bool cancelled() const noexcept;
    Clock::time_point when() const noexcept;

private:
    detail::TimerCallbackNode* node_ = nullptr;
};

class EventLoop {
public:
    using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

    explicit EventLoop(std::unique_ptr<IoBackend> backend = nullptr);
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Scheduling. Callbacks run on the loop thread, never inline.
    Handle call_soon(detail::Callback fn);
    TimerHandle call_later(Clock::duration delay, detail::Callback fn);
    TimerHandle call_at(Clock::time_point when, detail::Callback fn);
    // The one thread-safe entry point.
    void call_soon_threadsafe(detail::Callback fn);

    // The loop's clock: virtual time under a MockClock, else the steady clock (shifted by the
    // virtual time a test's outermost MockClock advanced, so that it never goes back).
    Clock::time_point time() const noexcept {
        return virtual_time_ ? virtual_time_->now : Clock::now() + real_time_offset_;
    }

    void run_forever();
    void stop() noexcept { stopping_ = true; }
    // Safe from any thread (a socket closed on one asks whether its loop runs on another).
    bool is_running() const noexcept { return running_.load(std::memory_order_acquire); }
    // Whether this thread made the loop or ran it last: only that thread may touch the loop's
    // backend while the loop is idle (the I/O layer, closing a file of the loop's).
    bool owned_by_this_thread() const noexcept {
        return owner_.load(std::memory_order_acquire) == std::this_thread::get_id();
    }
    // Keeps `loop` from being destroyed while the lock is held; an empty lock when it is gone
    // already. For another thread that must reach a loop it does not own.
    static std::unique_lock<std::mutex> lock_if_alive(const EventLoop* loop);
    // For another thread's code letting go of an fd this loop may know (a socket closed,
    // released or moved to another loop): the loop forgets it on its own thread (at its next
    // tick, as it stops running, or when it next runs or closes), so nothing of it stays for a
    // later file with that number. `Close`: the loop closes the fd after (the number cannot go
    // to another file first, and io_uring cancels by a number that must still be open).
    // `CloseIfRunning`: the same while the loop runs; an idle loop forgets the number only, and
    // the fd stays the caller's. `Forget`: never closed (the number alone). True when the loop
    // is to close the fd: the caller must not touch it again. Nothing is queued on a closed
    // loop (false).
    enum class FdHandOffMode { Close, CloseIfRunning, Forget };
    bool hand_off_fd(int fd, FdHandOffMode mode) noexcept;
    bool is_closed() const noexcept { return closed_.load(std::memory_order_relaxed); }
    void close();

    void set_debug(bool on) noexcept { debug_.store(on, std::memory_order_relaxed); }
    // Tasks created from now on carry statistics (age, time on the loop): debug mode and live
    // introspection turn it on.
    bool keeps_task_stats() const noexcept { return get_debug() || task_stats_; }
    void keep_task_stats(bool on) noexcept { task_stats_ = on; }

    // Debug aid (Seastar's shuffle): with a non-zero seed, the work of each tick runs in a
    // seeded random order instead of FIFO, to shake out code that silently depends on the order
    // in which ready tasks run. Also set by CORIO_SHUFFLE_SEED. 0 turns it off.
    void set_ready_shuffle(std::uint64_t seed) noexcept { shuffle_state_ = seed; }

    // Testing hook (corio::testing::cancel_at_every_suspension): called with the task each time
    // it is about to suspend at a corio awaitable. Empty in normal use.
    using SuspendHook = std::function<void(detail::TaskBase&)>;
    void set_suspend_hook(SuspendHook hook) { suspend_hook_ = std::move(hook); }
    const SuspendHook& suspend_hook() const noexcept { return suspend_hook_; }

    // Something that lives as long as the loop and is torn down by close() (newest first): the
    // introspection endpoint, say.
    struct Service {
        virtual ~Service() = default;
    };
    void add_service(std::unique_ptr<Service> s) { services_.push_back(std::move(s)); }
    // Relaxed atomic: a wake from another thread reads it (TaskBase::schedule).
    bool get_debug() const noexcept { return debug_.load(std::memory_order_relaxed); }
    std::chrono::nanoseconds slow_callback_duration = std::chrono::milliseconds(100);

    void set_exception_handler(ExceptionHandler handler) { handler_ = std::move(handler); }
    const ExceptionHandler& get_exception_handler() const noexcept { return handler_; }
    void call_exception_handler(const ExceptionContext& context) noexcept;
    static void default_exception_handler(const ExceptionContext& context) noexcept;

    // loop.create_future() (defined in corio/future.hpp).
    template <class T = void>
    Future<T> create_future();

    // loop.add_signal_handler(sig, f): f runs on the loop (never inside the signal handler)
    // each time `sig` arrives. remove_signal_handler restores the previous disposition.
    void add_signal_handler(int sig, std::function<void()> handler);
    bool remove_signal_handler(int sig);
    // The runner's Ctrl-C handling: runs while the application has no handler of its own for
    // `sig`, and comes back when the application removes its handler.
    void set_fallback_signal_handler(int sig, std::function<void()> handler);
    void clear_fallback_signal_handler(int sig) noexcept;
    // A run begins: the signals the fallback handlers see are counted from zero (the signal
    // handler itself ends the process at the second, even while the loop is blocked).
    static void restart_fallback_signal_count() noexcept;
    // Reads the signal pipe now, without waiting, and queues the handlers of what came (while
    // work is ready the loop asks the kernel only one tick in 64): the runner's last look
    // before it lets Ctrl-C go back to its default. True when a signal came.
    bool read_pending_signals();

    IoBackend& backend() noexcept { return *backend_; }
    // Throws std::logic_error once shutdown_default_executor() has been called (asyncio's
    // RuntimeError), rather than making a new pool.
    ThreadPool& default_executor();
    void shutdown_default_executor();

    // --- the machinery below is public for corio's own layers, not for applications ---
    // Runs `fn` once at the end of this tick, after its ready work and before the loop polls
    // or a run returns (the streams' coalesced writes: held back for the next write, they still
    // leave in the tick that made them). A callback that schedules another runs it in the same
    // tick end. Dropped unrun, like call_soon's, if the loop closes first.
    void call_at_tick_end(detail::Callback fn);
    // A task's next step goes on the ready queue (no allocation in steady state).
    void schedule(detail::TaskBase& task) { ready_push(std::uintptr_t(&task) | kReadyTask); }
    // A timer of a task's await (a sleep, a wait's deadline) is due: the task is woken from the
    // ready queue, not from the timer, so that it resumes a tick later, as asyncio's does (its
    // timer handle sets a future, whose callback then schedules the task). Ties with a timeout
    // or a call_later due at the same time then go in the order the timers were set.
    // (node.woken is set already: a cancel meanwhile does not schedule it twice.)
    void schedule_timer_wake(detail::WaitNode& node) { ready_push(std::uintptr_t(&node) | kReadyTimerWake); }
    // An executor call that finished on another thread comes back to the loop; throws
    // std::logic_error once the loop is closed. Pool threads call it through job_gate() only.
    void schedule_threadsafe(detail::ThreadJob& job) { push_threadsafe(std::uintptr_t(&job) | kReadyThreadJob); }
    const std::shared_ptr<detail::LoopGate>& job_gate() const noexcept { return job_gate_; }
    void add_timer(detail::TimerNode& node);
    void remove_timer(detail::TimerNode& node) noexcept;

    // Runs ticks until `done()` holds; stop() ends it after the current tick, with an error
    // unless that tick made `done()` hold. A stop() is spent however the run ends, so it never
    // leaks into the next run (asyncio's run_forever resets it in `finally`). True when a stop()
    // came in the last tick.
    template <class Pred>
    bool run_until(Pred done) {
        RunningScope scope(*this);
        SpendStop spend{stopping_};
        while (!done()) {
            run_once();  // a stop() made before the run still lets one tick run (asyncio's L7)
            if (stopping_ && !done()) throw std::logic_error("Event loop stopped before Future completed.");
        }
        return stopping_;
    }
    void run_once();

    detail::TaskBase* current_task() const noexcept { return current_task_; }
    void set_current_task(detail::TaskBase* t) noexcept { current_task_ = t; }
    void register_task(detail::TaskBase& t);
    void unregister_task(detail::TaskBase& t) noexcept;
    const detail::IntrusiveList<detail::TaskBase, detail::AllTasksTag>& tasks() const noexcept { return tasks_; }
    std::uint64_t next_task_id() noexcept { return ++task_counter_; }
    // Unique in the process: tells this loop from a later one made at the same address.
    std::uint64_t serial() const noexcept { return serial_; }

    void register_async_gen(detail::AsyncGenRecord& g) noexcept;
    void unregister_async_gen(detail::AsyncGenRecord& g) noexcept;
    const detail::IntrusiveList<detail::AsyncGenRecord, detail::AsyncGenTag>& async_gens() const noexcept {
        return async_gens_;
    }

    // Operations of the loop's own (the signal pipe's read): they do not make a tick with
    // ready work poll the backend every time.
    void internal_io_started() noexcept { ++internal_io_; }
    void internal_io_finished() noexcept { --internal_io_; }

    // Work handed to other threads that will come back through call_soon_threadsafe; the
    // virtual clock does not jump while any is outstanding.

    void external_work_started() noexcept { ++external_pending_; }
    void external_work_finished() noexcept { --external_pending_; }
    std::size_t external_work() const noexcept { return external_pending_; }
    // I/O operations of the application's still held by the backend.
    std::size_t pending_io() const noexcept { return backend_->pending() - internal_io_; }

    void install_virtual_time(detail::VirtualTime* vt) noexcept {
        // Back on the real clock: carry on from the virtual time reached, so that loop time
        // never goes back and timers armed under the virtual clock keep their remaining delay.
        if (virtual_time_ && !vt && virtual_time_->now - Clock::now() > real_time_offset_)
            real_time_offset_ = virtual_time_->now - Clock::now();
        virtual_time_ = vt;
    }
    detail::VirtualTime* virtual_time() const noexcept { return virtual_time_; }

    void check_open() const;
    // Debug mode (asyncio's _check_thread): a scheduling call from another thread than the one
    // running the loop throws std::logic_error; only call_soon_threadsafe may come from there.
    void check_thread() const {
        if (get_debug()) check_thread_slow();
    }

private:
    void check_thread_slow() const;
    // A ready-queue entry is one word: the object, with its kind in the three low bits (every
    // object queued is at least 8-byte aligned). A million ready tasks cost 8 MB of queue, not
    // 16 as a {function, argument} pair would.
    enum : std::uintptr_t {
        kReadyTask = 0,
        kReadyCallback = 1,
        kReadyTimerCallback = 2,
        kReadyThreadJob = 3,
        kReadyTimerWake = 4,
    };
    static constexpr std::uintptr_t kReadyKindMask = 7;
    // A stop() is spent however a run ends, an exception included.
    struct SpendStop {
        bool& stopping;
        ~SpendStop() { stopping = false; }
    };
    struct RunningScope {
        explicit RunningScope(EventLoop& loop);
        ~RunningScope();
        EventLoop& loop;
        EventLoop* previous;
    };

    void ready_push(std::uintptr_t item) { ready_.push(item); }
    void push_threadsafe(std::uintptr_t item);
    // close(): drops the ready queue and the tick-end callbacks, unrun.
    void drop_timers() noexcept;
    void drop_everything_ready() noexcept;
    void install_signal(int sig);
    void uninstall_signal(int sig) noexcept;
    // A signal-pipe read cancelled with the last signal is collected (a poll) while the loop
    // does not run: the next run may be on another thread, which an io_uring ring with I/O in
    // flight refuses.
    void collect_stopped_signal_read() noexcept;
    void stop_signal_read_if_unused() noexcept;  // with no signal handled any more
    static void run_ready(std::uintptr_t item) noexcept;
    void run_ready_timed(std::uintptr_t item) noexcept;
    static void drop_ready(std::uintptr_t item) noexcept;
    static void fire_timer_callback(detail::TimerNode* t) noexcept;
    void shuffle_ready(std::size_t n) noexcept;
    std::uintptr_t ready_pop() noexcept { return ready_.pop(); }
    std::size_t ready_size() const noexcept { return ready_.size(); }
    void drain_inbox();
    void fire_due_timers();
    void heap_up(std::size_t i) noexcept;
    void heap_down(std::size_t i) noexcept;
    static bool earlier(const detail::TimerNode* a, const detail::TimerNode* b) noexcept {
        return detail::fires_before(*a, *b);
    }

    std::unique_ptr<IoBackend> backend_;
    std::unique_ptr<detail::SignalState, void (*)(detail::SignalState*) noexcept> signals_{nullptr,
                                                                                         &detail::destroy_signal_state};
    std::uint64_t ticks_ = 0;
    std::uint64_t shuffle_state_ = 0;
    // Pushing and popping never allocate in steady state.
    detail::ReadyRing ready_;

    std::vector<std::uintptr_t> tick_end_;  // kReadyCallback entries
    std::vector<std::uintptr_t> tick_end_running_;

    std::vector<detail::TimerNode*> timers_;
    std::uint32_t timer_seq_ = 0;

    std::mutex inbox_mutex_;
    std::vector<std::uintptr_t> inbox_;
    std::vector<std::uintptr_t> inbox_spare_;
    std::atomic<bool> inbox_nonempty_{false};
    struct FdHandOff {
        int fd;
        bool close_it;
    };
    std::vector<FdHandOff> fd_hand_offs_;  // under inbox_mutex_
    std::vector<FdHandOff> fd_hand_offs_spare_;
    void forget_handed_off_fds(std::vector<FdHandOff>& fds) noexcept;

    detail::TaskBase* current_task_ = nullptr;
    detail::IntrusiveList<detail::TaskBase, detail::AllTasksTag> tasks_;
    detail::IntrusiveList<detail::AsyncGenRecord, detail::AsyncGenTag> async_gens_;
    std::uint64_t task_counter_ = 0;
    std::size_t external_pending_ = 0;
    std::size_t internal_io_ = 0;
    detail::VirtualTime* virtual_time_ = nullptr;
    Clock::duration real_time_offset_{0};  // time() - Clock::now() outside virtual time

    ExceptionHandler handler_;
    std::unique_ptr<ThreadPool> default_executor_;
    bool default_executor_shut_down_ = false;
    std::shared_ptr<detail::LoopGate> job_gate_;
    std::uint64_t serial_;
    std::atomic<bool> running_{false};
    std::atomic<std::thread::id> owner_{std::this_thread::get_id()};
    bool stopping_ = false;
    std::atomic<bool> closed_{false};
    bool callbacks_refused_ = false;  // under inbox_mutex_: close() is joining the default executor
    std::atomic<bool> debug_{false};
    bool task_stats_ = false;
    SuspendHook suspend_hook_;
    std::vector<std::unique_ptr<Service>> services_;
};

// The loop running on this thread; throws std::logic_error when there is none.
EventLoop& get_running_loop();

}  // namespace corio
