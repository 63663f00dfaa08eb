// Blocking code: ThreadPool, to_thread, run_in_executor, run_coroutine_threadsafe.
//
// C++ has no GIL: CPU-bound work belongs on a ThreadPool, and the loop's thread stays free.
// Cancelling the awaiting task stops the wait, not the thread (as in asyncio); a function
// whose first parameter is a std::stop_token gets a stop request, and a call that has not
// started yet is dropped.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "corio/detail/wait_node.hpp"
#include "corio/loop.hpp"
#include "corio/task.hpp"

namespace corio {

namespace detail {

// A call handed to a pool thread. Shared by the awaiting frame and the worker, so either may
// go first: a cancelled awaiter can leave while the call still runs.
class ThreadJob {
public:
    virtual ~ThreadJob() = default;
    void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
    void release() noexcept {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
    }

    enum : int { Queued, Running, Finished, Dropped };
    std::atomic<int> state{Queued};
    std::stop_source stop;
    EventLoop* loop = nullptr;        // for the loop thread only: it may be gone when a call ends
    std::shared_ptr<LoopGate> gate;   // how the worker reaches the loop
    WaitNode* waiter = nullptr;       // touched on the loop thread only
    bool back_on_loop = false;        // loop thread only: the call ended and came back
    bool dropped_unawaited = false;   // loop thread only: its run_in_executor call went unawaited
    std::exception_ptr error;         // what the call threw, or why the pool refused it

    // On the worker thread.
    virtual void run() noexcept = 0;
    // On the loop thread, for a call dropped before it started: its function and arguments go
    // now, where they were made, instead of with the worker's reference on the worker thread
    // (they may hold the loop's objects, whose reference counts are not atomic).
    virtual void discard() noexcept = 0;
    // On the worker thread, after run(): hands the job (and the worker's reference) back to its
    // loop, or drops it if the loop has closed.
    void post_back() noexcept;
    // Back on the loop thread.
    static void finished_on_loop(void* self) noexcept;

private:
    std::atomic<int> refs_{1};
};

template <class R, class F>
class FnJob final : public ThreadJob {
public:
    explicit FnJob(F f) : fn_(std::move(f)) {}
    void discard() noexcept override { fn_.reset(); }
    void run() noexcept override {
        try {
            if constexpr (std::is_void_v<R>) {
                call();
            } else {
                value_.emplace(call());
            }
        } catch (...) {
            error = std::current_exception();
        }
    }
    R take() {
        if (error) std::rethrow_exception(error);
        if constexpr (!std::is_void_v<R>) return std::move(*value_);
    }

private:
    decltype(auto) call() {
        if constexpr (std::is_invocable_v<F&, std::stop_token>)
            return (*fn_)(stop.get_token());
        else
            return (*fn_)();
    }
    std::optional<F> fn_;
    std::conditional_t<std::is_void_v<R>, char, std::optional<R>> value_{};
};

// False when the pool refuses the job (shut down, or no thread could start): the reason is in
// job->error.
bool submit_job(ThreadPool& pool, ThreadJob* job) noexcept;
// The default executor of the job's loop, or nullptr with the job refused (it was shut down).
ThreadPool* default_pool_for(ThreadJob* job) noexcept;
void cancel_job(ThreadJob* job) noexcept;

void throw_thread_call_reused();
// A call made on one loop, awaited by a task of another: its return would wake the task from
// the wrong thread (asyncio's F5, "attached to a different loop").
void check_thread_call_loop(const ThreadJob& job);
// Debug mode: a to_thread call dropped without being awaited never ran.
void report_thread_call_never_awaited() noexcept;
// A run_in_executor call dropped without being awaited: should it fail, nobody hears of it but
// the exception handler ("Future exception was never retrieved", as asyncio's future says).
void thread_call_dropped_unawaited(ThreadJob& job) noexcept;

struct SubmitNow {};

// The awaitable returned by to_thread / run_in_executor, awaited once. to_thread's call starts
// when it is awaited (asyncio.to_thread is a coroutine); run_in_executor's at once.
template <class R, class F>
class [[nodiscard]] ThreadCall final : public WaitNode {
public:
    // pool == nullptr: the default executor of the awaiting task's loop, looked up as the call
    // is submitted (shutdown_default_executor() may destroy it between the two).
    ThreadCall(ThreadPool* pool, F f) : pool_(pool), job_(new FnJob<R, F>(std::move(f))) {}
    // Submitted now, as asyncio's loop.run_in_executor() submits before it returns a future: a
    // call never awaited still runs, and its result is dropped. **Throws** what the pool's
    // refusal says (shut down), or std::logic_error without a running loop.
    ThreadCall(ThreadPool& pool, F f, SubmitNow) : pool_(&pool), job_(new FnJob<R, F>(std::move(f))), submitted_(true) {
        try {
            job_->loop = &get_running_loop();
        } catch (...) {
            job_->release();
            throw;
        }
        if (!submit_job(pool, job_)) {
            std::exception_ptr refusal = job_->error;
            job_->release();
            std::rethrow_exception(refusal);
        }
    }
    ThreadCall(ThreadCall&& o) noexcept
        : pool_(o.pool_), job_(std::exchange(o.job_, nullptr)), submitted_(o.submitted_), awaited_(o.awaited_) {}
    ThreadCall(const ThreadCall&) = delete;
    ~ThreadCall() {
        if (job_ && !awaited_) {
            if (submitted_) thread_call_dropped_unawaited(*job_);
            else report_thread_call_never_awaited();
        }
        if (job_) {
            if (job_->waiter == this) {  // frame destroyed mid-wait (its loop is closing)
                job_->waiter = nullptr;
                cancel_job(job_);  // a call not started is dropped, its captures released here
            }
            job_->release();
        }
    }

    // A call submitted at once may be back already.
    bool await_ready() const noexcept { return submitted_ && job_ && !awaited_ && job_->back_on_loop; }
    bool await_suspend(std::coroutine_handle<> h) {
        if (!job_ || awaited_) throw_thread_call_reused();  // moved from, or awaited before
        if (submitted_) check_thread_call_loop(*job_);
        awaited_ = true;
        if (!suspend(h)) {
            if (submitted_) cancel_job(job_);  // the pending cancellation is this call's
            return true;  // woken already, to take a pending cancellation
        }
        job_->waiter = this;
        if (submitted_) return true;  // the call is under way: its return wakes us
        job_->loop = task_loop();
        // Handing the job to a worker is the very last act: nothing of this frame is touched
        // after it (clang may otherwise write to the frame after the hand-off, llvm #56301).
        // A refusal is not thrown from here: the task is already registered as waiting on this
        // node, so it fails the await on the next tick instead (the pool may be shut down by
        // another thread at any point, even after a check).
        ThreadPool* pool = pool_ ? pool_ : default_pool_for(job_);
        if (!pool || !submit_job(*pool, job_)) wake();
        return true;
    }
    R await_resume() {
        if (!job_) throw_thread_call_reused();
        if (!awaited_ && submitted_) check_thread_call_loop(*job_);  // ready at once
        awaited_ = true;  // also when it was ready at once
        job_->waiter = nullptr;  // done waiting: the destructor has nothing to cancel
        throw_if_cancelled();
        return job_->take();
    }
    void on_cancel() override {
        if (!woken) {
            job_->waiter = nullptr;
            cancel_job(job_);
            wake();
        } else if (!cancelled) {
            late_cancel = true;
        }
        cancelled = true;
    }

private:
    EventLoop* task_loop() const noexcept;
    ThreadPool* pool_;
    FnJob<R, F>* job_;
    bool submitted_ = false;
    bool awaited_ = false;
};

template <class F, class... Args>
auto bind_call(F f, Args... args) {
    if constexpr (std::is_invocable_v<F&, std::stop_token, Args&&...>)
        return [f = std::move(f), ... args = std::move(args)](std::stop_token st) mutable -> decltype(auto) {
            return std::invoke(f, std::move(st), std::move(args)...);
        };
    else
        return [f = std::move(f), ... args = std::move(args)]() mutable -> decltype(auto) {
            return std::invoke(f, std::move(args)...);
        };
}

template <class F, class... Args>
struct call_result {
    static constexpr bool takes_stop_token = std::is_invocable_v<F&, std::stop_token, Args&&...>;
    static_assert(takes_stop_token || std::is_invocable_v<F&, Args&&...>,
                  "to_thread / run_in_executor: the function cannot be called with these arguments. They are "
                  "copied (or moved) into the call: a parameter taken by non-const reference needs std::ref(x) "
                  "(x must then outlive the call) or a pointer");
    using type = std::conditional_t<takes_stop_token, std::invoke_result<F&, std::stop_token, Args&&...>,
                                    std::invoke_result<F&, Args&&...>>::type;
};

// What the awaiting task gets: a copy when f returns a reference (the referent is another
// thread's business once the call is over), as asyncio hands back the object itself.
template <class F, class... Args>
using call_result_t = std::remove_cvref_t<typename call_result<F, Args...>::type>;

}  // namespace detail

class ThreadPool {
public:
    explicit ThreadPool(std::size_t max_threads = default_size());
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // min(32, cores + 4), as Python's default executor.
    static std::size_t default_size();
    std::size_t max_threads() const noexcept { return max_threads_; }

    // Runs what was queued, then joins the threads; a second caller meanwhile waits for that.
    // **Throws** std::logic_error from one of the pool's own calls (it would join itself).
    void shutdown();
    bool accepting();

    void submit(detail::ThreadJob* job);

private:
    void worker();
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<detail::ThreadJob*> queue_;
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;
    std::size_t max_threads_;
    bool stopping_ = false;
    bool joining_ = false;  // a shutdown() joins the threads (others wait on joined_cv_)
    std::condition_variable joined_cv_;
};

// asyncio.to_thread: runs f(args...) on the running loop's default executor.
template <class F, class... Args>
auto to_thread(F f, Args... args) {
    using R = detail::call_result_t<F, Args...>;
    auto call = detail::bind_call(std::move(f), std::move(args)...);
    (void)get_running_loop().default_executor();  // refused at once after shutdown_default_executor()
    return detail::ThreadCall<R, decltype(call)>(nullptr, std::move(call));
}

// loop.run_in_executor(pool, f, args...).
template <class F, class... Args>
auto run_in_executor(ThreadPool& pool, F f, Args... args) {
    using R = detail::call_result_t<F, Args...>;
    auto call = detail::bind_call(std::move(f), std::move(args)...);
    return detail::ThreadCall<R, decltype(call)>(pool, std::move(call), detail::SubmitNow{});
}

// Submits `coro` to `loop` (running on another thread) and returns a std::future of its result.
// The task counts as created at `where`, the caller's line (debug reports, corio-ps).
template <class T>
std::future<T> run_coroutine_threadsafe(Coro<T> coro, EventLoop& loop,
                                        std::source_location where = std::source_location::current()) {
    auto promise = std::make_shared<std::promise<T>>();
    std::future<T> result = promise->get_future();
    loop.call_soon_threadsafe([&loop, promise, where, c = std::move(coro)]() mutable {
        try {
            Task<T> t = detail::spawn(loop, std::move(c), {}, where);
            t.add_done_callback([promise](Task<T> done) {
                try {
                    if constexpr (std::is_void_v<T>) {
                        done.result();
                        promise->set_value();
                    } else {
                        // Nobody else sees this task: its result moves out (move-only T too).
                        done.typed()->rethrow_if_failed();
                        promise->set_value(std::move(done.typed()->value()));
                    }
                } catch (...) {
                    promise->set_exception(std::current_exception());
                }
            });
        } catch (...) {
            promise->set_exception(std::current_exception());
        }
    });
    return result;
}

template <class R, class F>
EventLoop* detail::ThreadCall<R, F>::task_loop() const noexcept {
    return task->loop();
}

}  // namespace corio
