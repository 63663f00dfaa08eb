#include "corio/loop.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "corio/debug.hpp"
#include "corio/detail/asyncgen_record.hpp"
#include "corio/detail/frame_alloc.hpp"
#include "corio/detail/task_base.hpp"
#include "corio/executor.hpp"
#include "corio/task.hpp"

namespace corio {

namespace detail {

// A callback node lets go of its callable (and what it captured) as soon as it has run or is
// cancelled, as asyncio's Handle drops _callback: a Handle kept afterwards holds no captures.
struct CallbackNode : Recycled {
    explicit CallbackNode(Callback f) : fn(std::move(f)) {}
    Callback fn;
    EventLoop* loop = nullptr;
    int refs = 1;
    bool cancelled = false;
    bool running = false;
    void release() noexcept {
        if (--refs == 0) delete this;
    }
};

struct TimerCallbackNode : TimerNode, Recycled {
    explicit TimerCallbackNode(Callback f) : fn(std::move(f)) {}
    Callback fn;
    EventLoop* loop = nullptr;
    int refs = 1;
    bool cancelled = false;
    bool running = false;
    void release() noexcept {
        if (--refs == 0) delete this;
    }
};

namespace {
thread_local EventLoop* t_running = nullptr;

std::mutex& live_loops_mutex() {
    static std::mutex m;
    return m;
}
std::unordered_set<const EventLoop*>& live_loops() {
    static std::unordered_set<const EventLoop*> s;
    return s;
}

void run_callback(EventLoop& loop, Callback& fn) noexcept {
    try {
        fn();
    } catch (...) {
        loop.call_exception_handler({"Exception in callback", std::current_exception(), {}, {}, {}});
    }
}

// Its captures go now, not with the last handle: they may hold that handle themselves (an
// object that keeps the handle of its own timer), which would never go.
template <class Node>
void let_go_of(Node* n) noexcept {
    Callback spent = std::move(n->fn);
    n->release();
}

// Runs once (the node is scheduled once); cancelled() stays false after the run, as in asyncio,
// and a cancel() afterwards only marks it.
template <class Node>
void run_node_once(Node* n) noexcept {
    if (!n->cancelled) {
        n->running = true;
        run_callback(*n->loop, n->fn);
        n->running = false;
    }
    let_go_of(n);
}

void run_callback_node(void* p) noexcept { run_node_once(static_cast<CallbackNode*>(p)); }
void run_timer_callback(void* p) noexcept { run_node_once(static_cast<TimerCallbackNode*>(p)); }

}  // namespace

EventLoop* running_loop() noexcept { return t_running; }

bool loop_alive(const EventLoop* loop) noexcept {
    std::lock_guard lock(live_loops_mutex());
    return live_loops().count(loop) != 0;
}

bool loop_alive(const EventLoop* loop, std::uint64_t serial) noexcept {
    std::lock_guard lock(live_loops_mutex());
    return live_loops().count(loop) != 0 && loop->serial() == serial;
}

}  // namespace detail

// --- handles -------------------------------------------------------------------------------

Handle::Handle(detail::CallbackNode* n) noexcept : node_(n) { ++node_->refs; }
Handle::Handle(const Handle& o) : node_(o.node_) {
    if (node_) ++node_->refs;
}
Handle& Handle::operator=(Handle o) {
    std::swap(node_, o.node_);
    return *this;
}
Handle::~Handle() {
    if (node_) node_->release();
}
void Handle::cancel() noexcept {
    if (!node_ || node_->cancelled) return;
    node_->cancelled = true;
    // Not from inside the callback itself: it is running (it lets go once it returns).
    if (!node_->running) detail::Callback spent = std::move(node_->fn);
}
bool Handle::cancelled() const noexcept { return node_ && node_->cancelled; }

TimerHandle::TimerHandle(detail::TimerCallbackNode* n) noexcept : node_(n) { ++node_->refs; }
TimerHandle::TimerHandle(const TimerHandle& o) : node_(o.node_) {
    if (node_) ++node_->refs;
}
TimerHandle& TimerHandle::operator=(TimerHandle o) {
    std::swap(node_, o.node_);
    return *this;
}
TimerHandle::~TimerHandle() {
    if (node_) node_->release();
}
void TimerHandle::cancel() noexcept {
    if (!node_ || node_->cancelled) return;
    node_->cancelled = true;
    detail::TimerCallbackNode* n = node_;
    n->refs += 1;  // the captures released below may drop this very handle
    if (n->armed()) {
        n->loop->remove_timer(*n);
        n->release();
    }
    if (!n->running) detail::Callback spent = std::move(n->fn);
    n->release();
}
bool TimerHandle::cancelled() const noexcept { return node_ && node_->cancelled; }
Clock::time_point TimerHandle::when() const noexcept { return node_ ? node_->when : Clock::time_point{}; }

// --- the loop ------------------------------------------------------------------------------

namespace {
std::uint64_t next_loop_serial() noexcept {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
}
}  // namespace

EventLoop::EventLoop(std::unique_ptr<IoBackend> backend)
    : backend_(backend ? std::move(backend) : make_default_backend()),
      job_gate_(std::make_shared<detail::LoopGate>(this)),
      serial_(next_loop_serial()) {
    if (const char* env = std::getenv("CORIO_DEBUG"); env && *env && std::string(env) != "0") set_debug(true);
    if (const char* env = std::getenv("CORIO_SHUFFLE_SEED"); env && *env) shuffle_state_ = std::strtoull(env, nullptr, 10);
    // Writing to a closed peer must be an EPIPE error, never a process-killing signal, whatever
    // the backend (asyncio / CPython do the same at start-up).
    ::signal(SIGPIPE, SIG_IGN);
    std::lock_guard lock(detail::live_loops_mutex());
    detail::live_loops().insert(this);
}

std::unique_lock<std::mutex> EventLoop::lock_if_alive(const EventLoop* loop) {
    std::unique_lock lock(detail::live_loops_mutex());
    if (detail::live_loops().count(loop) == 0) return {};
    return lock;
}

EventLoop::~EventLoop() {
    if (running_) std::terminate();  // destroying a running loop is a bug no cleanup can mend
    close();
    std::lock_guard lock(detail::live_loops_mutex());
    detail::live_loops().erase(this);
}

void EventLoop::check_open() const {
    if (closed_.load(std::memory_order_relaxed)) throw std::logic_error("Event loop is closed");
    check_thread();
}

void EventLoop::check_thread_slow() const {
    if (running_.load(std::memory_order_acquire) && !owned_by_this_thread())
        throw std::logic_error("Non-thread-safe operation invoked on an event loop other than the current one");
}

Handle EventLoop::call_soon(detail::Callback fn) {
    check_open();
    auto* n = new detail::CallbackNode(std::move(fn));
    n->loop = this;
    Handle h(n);
    ready_push(std::uintptr_t(n) | kReadyCallback);
    return h;
}

void EventLoop::call_at_tick_end(detail::Callback fn) {
    check_open();
    auto* n = new detail::CallbackNode(std::move(fn));
    n->loop = this;
    tick_end_.push_back(std::uintptr_t(n) | kReadyCallback);
}

TimerHandle EventLoop::call_later(Clock::duration delay, detail::Callback fn) {
    return call_at(detail::deadline_after(time(), delay), std::move(fn));
}

TimerHandle EventLoop::call_at(Clock::time_point when, detail::Callback fn) {
    check_open();
    auto* n = new detail::TimerCallbackNode(std::move(fn));
    n->loop = this;
    n->when = when;
    n->fire = &EventLoop::fire_timer_callback;
    TimerHandle h(n);  // the node's first reference belongs to the heap, then to the ready queue
    add_timer(*n);
    return h;
}

void EventLoop::call_soon_threadsafe(detail::Callback fn) {
    auto* n = new detail::CallbackNode(std::move(fn));
    n->loop = this;
    try {
        push_threadsafe(std::uintptr_t(n) | kReadyCallback);
    } catch (...) {
        n->release();
        throw;
    }
}

void EventLoop::fire_timer_callback(detail::TimerNode* t) noexcept {
    auto* n = static_cast<detail::TimerCallbackNode*>(t);
    n->loop->ready_push(std::uintptr_t(n) | kReadyTimerCallback);
}

void EventLoop::push_threadsafe(std::uintptr_t item) {
    // The wake-up is written under the lock: close() takes it too, so the loop (and its
    // backend) cannot be torn down while another thread is still inside this call.
    std::lock_guard lock(inbox_mutex_);
    if (closed_.load(std::memory_order_relaxed) || (callbacks_refused_ && (item & kReadyKindMask) == kReadyCallback))
        throw std::logic_error("Event loop is closed");
    inbox_.push_back(item);
    if (!inbox_nonempty_.exchange(true, std::memory_order_acq_rel)) backend_->wakeup();
}

void EventLoop::drain_inbox() {
    if (!inbox_nonempty_.load(std::memory_order_acquire)) return;
    {
        std::lock_guard lock(inbox_mutex_);
        std::swap(inbox_, inbox_spare_);
        std::swap(fd_hand_offs_, fd_hand_offs_spare_);
        inbox_nonempty_.store(false, std::memory_order_release);
    }
    forget_handed_off_fds(fd_hand_offs_spare_);
    for (std::uintptr_t item : inbox_spare_) ready_push(item);
    inbox_spare_.clear();
}

void EventLoop::shuffle_ready(std::size_t n) noexcept {
    for (std::size_t i = n - 1; i > 0; --i) {
        // xorshift64: deterministic for a seed, so a failing order can be replayed.
        shuffle_state_ ^= shuffle_state_ << 13;
        shuffle_state_ ^= shuffle_state_ >> 7;
        shuffle_state_ ^= shuffle_state_ << 17;
        std::size_t j = shuffle_state_ % (i + 1);
        std::swap(ready_[i], ready_[j]);
    }
}

void EventLoop::run_ready(std::uintptr_t item) noexcept {
    void* p = reinterpret_cast<void*>(item & ~kReadyKindMask);
    switch (item & kReadyKindMask) {
        case kReadyTask: static_cast<detail::TaskBase*>(p)->step(); break;
        case kReadyCallback: detail::run_callback_node(p); break;
        case kReadyTimerCallback: detail::run_timer_callback(p); break;
        case kReadyThreadJob: detail::ThreadJob::finished_on_loop(p); break;
        case kReadyTimerWake: static_cast<detail::WaitNode*>(p)->task->schedule(); break;
    }
}

// Debug mode: a callback that holds the loop too long is reported, as a task step is (asyncio
// times every handle). Task steps time themselves (they know their task's name).
void EventLoop::run_ready_timed(std::uintptr_t item) noexcept {
    if ((item & kReadyKindMask) == kReadyTask) return run_ready(item);
    // Taken before the run, which lets go of the callable.
    const std::type_info* what = nullptr;
    void* p = reinterpret_cast<void*>(item & ~kReadyKindMask);
    if ((item & kReadyKindMask) == kReadyCallback) what = static_cast<detail::CallbackNode*>(p)->fn.target_type();
    if ((item & kReadyKindMask) == kReadyTimerCallback) what = static_cast<detail::TimerCallbackNode*>(p)->fn.target_type();
    const auto t0 = Clock::now();
    run_ready(item);
    if (const auto took = Clock::now() - t0; took >= slow_callback_duration) detail::report_slow_callback(*this, took, what);
}

// The loop is closing: what will never run lets go of what it holds.
void EventLoop::drop_ready(std::uintptr_t item) noexcept {
    void* p = reinterpret_cast<void*>(item & ~kReadyKindMask);
    switch (item & kReadyKindMask) {
        case kReadyTask: break;  // abandoned with the loop's other tasks
        case kReadyTimerWake: break;  // in an abandoned task's frame
        case kReadyCallback: detail::let_go_of(static_cast<detail::CallbackNode*>(p)); break;
        case kReadyTimerCallback: detail::let_go_of(static_cast<detail::TimerCallbackNode*>(p)); break;
        case kReadyThreadJob: {
            auto* job = static_cast<detail::ThreadJob*>(p);
            job->waiter = nullptr;
            detail::ThreadJob::finished_on_loop(job);
            break;
        }
    }
}

void EventLoop::run_once() {
    drain_inbox();
    using std::chrono::nanoseconds;
    nanoseconds timeout{-1};
    if (ready_size() != 0 || stopping_ || !tick_end_.empty()) {
        timeout = nanoseconds(0);
    } else if (!timers_.empty()) {
        // Compared before subtracting: a deadline at time_point::min() would overflow.
        const Clock::time_point when = timers_.front()->when;
        const Clock::time_point now = time();
        timeout = when <= now ? nanoseconds(0) : std::chrono::duration_cast<nanoseconds>(when - now);
    }
    if (virtual_time_ && timeout != nanoseconds(0)) {
        // Virtual time (Trio's autojump clock): when nothing is ready and no other thread owes
        // us an answer, jump straight to the next deadline instead of sleeping.
        backend_->poll(nanoseconds(0));
        drain_inbox();
        if (ready_size() == 0) {
            if (external_pending_ == 0 && !timers_.empty()) {
                // Real I/O in flight may just not have arrived yet (loopback delivery is not
                // instantaneous on a busy machine): give it a short real grace period first.
                bool idle = true;
                if (backend_->pending() > internal_io_) {
                    idle = backend_->poll(std::chrono::milliseconds(20)) == 0;
                    drain_inbox();
                    idle = idle && ready_size() == 0;
                }
                // A deadline at the clock's end is "never" (a sleep or timeout of duration::max()):
                // nothing to jump to, as Trio's autojump clock jumps only to finite deadlines.
                if (idle && timers_.front()->when == Clock::time_point::max()) {
                    backend_->poll(nanoseconds(-1));
                } else if (idle) {
                    virtual_time_->now = std::max(virtual_time_->now, timers_.front()->when);
                }
            } else {
                backend_->poll(nanoseconds(-1));
            }
        }
    } else if (timeout != nanoseconds(0) || backend_->pending() > internal_io_ || (ticks_ & 63) == 0) {
        // With work ready and no I/O of the application's outstanding, there is nothing to ask
        // the kernel but the odd signal: polling one tick in 64 keeps pure task switching nearly
        // free of syscalls (cross-thread wake-ups arrive through the inbox flag, checked every
        // tick).
        backend_->poll(timeout);
    }
    ++ticks_;
    drain_inbox();
    fire_due_timers();
    // Only what is ready now runs in this tick; what it schedules runs in the next one.
    std::size_t n = ready_size();
    if (shuffle_state_ && n > 1) shuffle_ready(n);
    if (get_debug()) [[unlikely]] {
        for (std::size_t i = 0; i < n; ++i) run_ready_timed(ready_pop());
    } else {
        for (std::size_t i = 0; i < n; ++i) run_ready(ready_pop());
    }
    while (!tick_end_.empty()) {
        std::swap(tick_end_, tick_end_running_);
        for (std::uintptr_t item : tick_end_running_) {
            if (get_debug()) [[unlikely]]
                run_ready_timed(item);
            else
                run_ready(item);
        }
        tick_end_running_.clear();
    }
}

EventLoop::RunningScope::RunningScope(EventLoop& l) : loop(l), previous(detail::t_running) {
    if (loop.running_) throw std::logic_error("This event loop is already running");
    if (previous) throw std::logic_error("Cannot run the event loop while another loop is running");
    loop.check_open();
    loop.running_ = true;
    loop.owner_.store(std::this_thread::get_id(), std::memory_order_release);
    detail::t_running = &loop;
}

EventLoop::RunningScope::~RunningScope() {
    std::vector<FdHandOff> handed;
    {
        // Other threads' hand-offs that came while it ran are dealt with before it idles: the
        // fds they leave it to close would otherwise stay open until it runs again.
        std::lock_guard lock(loop.inbox_mutex_);
        loop.running_ = false;
        std::swap(handed, loop.fd_hand_offs_);
    }
    loop.forget_handed_off_fds(handed);
    if (loop.signals_) loop.collect_stopped_signal_read();
    detail::t_running = previous;
}

void EventLoop::run_forever() {
    RunningScope scope(*this);
    SpendStop spend{stopping_};
    do {
        run_once();  // stop() before run_forever() still runs one tick (asyncio's L7)
    } while (!stopping_);
}

void EventLoop::register_task(detail::TaskBase& t) {
    tasks_.push_back(t);
    t.add_ref();  // the loop's reference, dropped when the task finishes
    t.schedule();
}

void EventLoop::unregister_task(detail::TaskBase& t) noexcept { tasks_.remove(t); }

void EventLoop::register_async_gen(detail::AsyncGenRecord& g) noexcept { async_gens_.push_back(g); }
void EventLoop::unregister_async_gen(detail::AsyncGenRecord& g) noexcept {
    async_gens_.remove(g);
}

void EventLoop::close() {
    if (running_) throw std::logic_error("Cannot close a running event loop");
    if (closed_.load(std::memory_order_relaxed)) return;
    // Operations still held by the backend complete first (with -ECANCELED), while everything
    // that waits on them still exists.
    backend_->cancel_all();
    while (!services_.empty()) services_.pop_back();
    // Timers first: a sleeping task's timer node lives in its frame, which abandoning the task
    // below destroys. Callbacks that will never run still own their nodes.
    // Released after the heap is emptied: a callback's captures may cancel or set timers as
    // they are destroyed (a connection that cancels its idle timer).
    drop_timers();
    // Tasks still pending here can never finish: asyncio's "Task was destroyed but it is
    // pending!". corio::run and Runner cancel and await every task before they close.
    while (detail::TaskBase* t = tasks_.front()) {
        call_exception_handler({"Task was destroyed but it is pending!", nullptr, t->name(), t->creation_site(),
                                format_call_graph(*t)});
        t->abandon();
    }
    while (detail::AsyncGenRecord* g = async_gens_.front()) {
        unregister_async_gen(*g);
        g->loop = nullptr;
        g->loop_closing();
    }
    signals_.reset();
    {
        std::vector<FdHandOff> handed;  // from other threads while it idled
        {
            std::lock_guard lock(inbox_mutex_);
            std::swap(handed, fd_hand_offs_);
        }
        forget_handed_off_fds(handed);
    }
    // The default executor is joined below without running the loop, which is half closed
    // (corio::run has shut it down before, with the loop running). A call of its waiting for a
    // callback of ours (run_coroutine_threadsafe's future, answered by a callback from the
    // inbox, or by a done callback of the task it started, now abandoned) must get an answer
    // instead of waiting for ever: from here other threads' callbacks are refused, as after
    // close(), and every callback not run yet is dropped now rather than after the join (the
    // futures see a broken promise). The calls' own completions still land in the inbox.
    std::vector<std::uintptr_t> refused;
    {
        std::lock_guard lock(inbox_mutex_);
        callbacks_refused_ = true;
        std::erase_if(inbox_, [&refused](std::uintptr_t item) {
            if ((item & kReadyKindMask) != kReadyCallback) return false;
            refused.push_back(item);
            return true;
        });
    }
    for (std::uintptr_t item : refused) drop_ready(item);
    // Abandoned frames and dropped captures may have armed timers meanwhile.
    do {
        drop_everything_ready();
        drop_timers();
    } while (ready_size() != 0 || !tick_end_.empty());
    default_executor_shut_down_ = true;
    if (std::unique_ptr<ThreadPool> pool = std::move(default_executor_)) pool->shutdown();
    {
        // Calls still running on pools of the application's drop their results from here on.
        std::lock_guard lock(job_gate_->mutex);
        job_gate_->loop = nullptr;
    }
    {
        std::lock_guard lock(inbox_mutex_);
        closed_.store(true, std::memory_order_relaxed);  // from here on, other threads are refused
    }
    drain_inbox();
    drop_everything_ready();
}

void EventLoop::drop_timers() noexcept {
    while (!timers_.empty()) {
        std::vector<detail::TimerNode*> dropped;
        dropped.swap(timers_);
        for (detail::TimerNode* t : dropped) t->heap_index = detail::TimerNode::npos;
        for (detail::TimerNode* t : dropped)
            if (t->fire == &EventLoop::fire_timer_callback) detail::let_go_of(static_cast<detail::TimerCallbackNode*>(t));
    }
}

void EventLoop::drop_everything_ready() noexcept {
    // A callback's captures, as they go, may schedule more: dropped in turn.
    while (ready_size() != 0 || !tick_end_.empty()) {
        while (ready_size() != 0) drop_ready(ready_pop());
        std::vector<std::uintptr_t> tick_end;
        tick_end.swap(tick_end_);
        for (std::uintptr_t item : tick_end) drop_ready(item);
    }
}

void EventLoop::default_exception_handler(const ExceptionContext& c) noexcept {
    try {
        std::ostringstream out;
        out << "corio: " << c.message;
        if (!c.task_name.empty()) out << "\n  task: " << c.task_name;
        if (c.location)
            out << (c.location_is_definition ? "\n  defined at: " : "\n  created at: ") << c.location->file_name() << ":" << c.location->line() << " ("
                << c.location->function_name() << ")";
        if (c.exception) out << "\n  exception: " << detail::describe(c.exception);
        if (!c.call_graph.empty()) out << "\n" << c.call_graph;
        out << "\n";
        std::cerr << out.str() << std::flush;
    } catch (...) {
        std::fputs("corio: error while reporting an error\n", stderr);
    }
}

void EventLoop::call_exception_handler(const ExceptionContext& c) noexcept {
    if (!handler_) {
        default_exception_handler(c);
        return;
    }
    try {
        ExceptionHandler handler = handler_;  // it may replace itself while it runs
        handler(*this, c);
    } catch (...) {
        default_exception_handler({"Unhandled error in exception handler", std::current_exception(), {}, {}, {}});
        default_exception_handler(c);
    }
}

EventLoop& get_running_loop() {
    EventLoop* l = detail::t_running;
    if (!l) throw std::logic_error("no running event loop");
    return *l;
}

}  // namespace corio
