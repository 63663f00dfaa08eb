#include "corio/executor.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>

#include "corio/detail/affinity.hpp"
#include "corio/loop.hpp"

namespace corio {

namespace detail {

namespace {
void report_unretrieved(ThreadJob& job) noexcept {
    if (!job.error) return;
    job.loop->call_exception_handler({"Future exception was never retrieved (a run_in_executor call never awaited)", job.error, {}, {}, {}});
}
}  // namespace

void thread_call_dropped_unawaited(ThreadJob& job) noexcept {
    if (job.back_on_loop) report_unretrieved(job);
    else job.dropped_unawaited = true;
}

void ThreadJob::finished_on_loop(void* self) noexcept {
    auto* job = static_cast<ThreadJob*>(self);
    job->loop->external_work_finished();
    job->back_on_loop = true;
    if (job->dropped_unawaited) report_unretrieved(*job);
    if (job->waiter) job->waiter->wake();
    job->release();
}

void ThreadJob::post_back() noexcept {
    // A local owner: once posted, the loop thread may free the job (and its `gate`) while the
    // lock is still held.
    std::shared_ptr<LoopGate> g = std::move(gate);
    {
        std::lock_guard lock(g->mutex);
        if (g->loop) {
            try {
                g->loop->schedule_threadsafe(*this);  // the worker's reference travels with it
                return;
            } catch (...) {
                // Only std::bad_alloc growing the inbox (close() clears the gate before it
                // refuses pushes): the result is lost.
            }
        }
    }
    release();  // the loop has closed, or is gone: nobody is waiting any more
}

void throw_thread_call_reused() {
    // As a Coro awaited twice (asyncio: "cannot reuse already awaited coroutine").
    throw std::logic_error("corio: awaiting a to_thread / run_in_executor call that was moved from or already awaited");
}

void check_thread_call_loop(const ThreadJob& job) {
    if (job.loop != &get_running_loop())
        throw std::logic_error("corio: a run_in_executor call awaited on another event loop than the one it was made on");
}

void report_thread_call_never_awaited() noexcept {
    EventLoop* loop = running_loop();
    if (!loop || !loop->get_debug()) return;
    // asyncio's RuntimeWarning for its to_thread coroutine.
    ExceptionContext c;
    c.message = "coroutine 'to_thread' was never awaited";
    if (TaskBase* t = loop->current_task()) c.task_name = t->name();
    loop->call_exception_handler(c);
}

bool submit_job(ThreadPool& pool, ThreadJob* job) noexcept {
    job->gate = job->loop->job_gate();
    job->loop->external_work_started();
    job->add_ref();  // the worker's
    try {
        pool.submit(job);
        return true;
    } catch (...) {
        job->error = std::current_exception();
        job->state.store(ThreadJob::Dropped, std::memory_order_relaxed);  // nothing more to cancel
        job->gate.reset();
        job->loop->external_work_finished();
        job->release();
        return false;
    }
}

ThreadPool* default_pool_for(ThreadJob* job) noexcept {
    try {
        return &job->loop->default_executor();
    } catch (...) {
        job->error = std::current_exception();
        job->state.store(ThreadJob::Dropped, std::memory_order_relaxed);  // never submitted
        return nullptr;
    }
}

void cancel_job(ThreadJob* job) noexcept {
    int expected = ThreadJob::Queued;
    if (job->state.compare_exchange_strong(expected, ThreadJob::Dropped, std::memory_order_acq_rel)) {
        // Never started: it will not run, and will not come back to the loop.
        job->discard();
        // The gate tells whether the loop is still counting: a frame destroyed after its loop
        // closed (an async generator kept outside it) must not touch the loop.
        std::lock_guard lock(job->gate->mutex);
        if (job->gate->loop) job->loop->external_work_finished();
    } else {
        job->stop.request_stop();
    }
}

}  // namespace detail

std::size_t ThreadPool::default_size() {
    std::size_t cores = std::max(1u, std::thread::hardware_concurrency());
    return std::min<std::size_t>(32, cores + 4);
}

ThreadPool::ThreadPool(std::size_t max_threads) : max_threads_(std::max<std::size_t>(1, max_threads)) {}

namespace {
// The pool whose call the current thread runs, if any (shutdown() from a call would join itself).
thread_local const ThreadPool* t_running_pool = nullptr;
}  // namespace

ThreadPool::~ThreadPool() {
    try {
        shutdown();
    } catch (const std::logic_error&) {
        // Its last owner let it go inside one of its own calls: the threads cannot be joined
        // (one is this), and the pool cannot outlive this destructor.
        std::fputs("corio: a ThreadPool was destroyed by one of its own calls\n", stderr);
        std::abort();
    }
}

bool ThreadPool::accepting() {
    std::lock_guard lock(mutex_);
    return !stopping_;
}

void ThreadPool::submit(detail::ThreadJob* job) {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) throw std::logic_error("cannot schedule new calls after shutdown");
        queue_.push_back(job);
        // A notified thread counts as idle until it wakes, so idle threads are matched against
        // every queued call, not just this one: two calls submitted back to back with one idle
        // thread get a second thread.
        if (queue_.size() > idle_ && threads_.size() < max_threads_) {
            try {
                if (const cpu_set_t* unpinned = detail::unpinned_affinity()) {
                    threads_.emplace_back([this, mask = *unpinned] {
                        ::pthread_setaffinity_np(::pthread_self(), sizeof mask, &mask);
                        worker();
                    });
                } else {
                    threads_.emplace_back([this] { worker(); });
                }
                return;  // the new thread finds the job without a notification
            } catch (...) {
                // No thread could start: the threads there are will get to the job, if any.
                if (threads_.empty()) {
                    queue_.pop_back();
                    throw;
                }
            }
        }
    }
    cv_.notify_one();
}

void ThreadPool::worker() {
    t_running_pool = this;
    std::unique_lock lock(mutex_);
    for (;;) {
        ++idle_;
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        --idle_;
        if (queue_.empty()) return;  // stopping, and nothing left to run
        detail::ThreadJob* job = queue_.front();
        queue_.pop_front();
        lock.unlock();
        int expected = detail::ThreadJob::Queued;
        if (job->state.compare_exchange_strong(expected, detail::ThreadJob::Running, std::memory_order_acq_rel)) {
            job->run();
            job->state.store(detail::ThreadJob::Finished, std::memory_order_release);
            job->post_back();
        } else {
            job->release();
        }
        lock.lock();
    }
}

void ThreadPool::shutdown() {
    // concurrent.futures raises RuntimeError("cannot join current thread") there.
    if (t_running_pool == this) throw std::logic_error("cannot join current thread: ThreadPool::shutdown() from one of its calls");
    std::unique_lock lock(mutex_);
    stopping_ = true;
    if (joining_) {
        // Another caller joins the threads: this one returns, as that one does, once they are
        // joined (and a destructor must not free the pool under it).
        joined_cv_.wait(lock, [&] { return !joining_; });
        return;
    }
    joining_ = true;
    std::vector<std::thread> threads;
    threads.swap(threads_);
    lock.unlock();
    cv_.notify_all();
    for (auto& t : threads) t.join();
    lock.lock();
    joining_ = false;
    joined_cv_.notify_all();
}

// --- the loop's default executor (to_thread) ---------------------------------------------

ThreadPool& EventLoop::default_executor() {
    check_open();
    if (default_executor_shut_down_) throw std::logic_error("cannot schedule new calls after shutdown");
    if (!default_executor_) default_executor_ = std::make_unique<ThreadPool>(ThreadPool::default_size());
    return *default_executor_;
}

void EventLoop::shutdown_default_executor() {
    default_executor_shut_down_ = true;
    if (!default_executor_) return;
    std::unique_ptr<ThreadPool> pool = std::move(default_executor_);
    if (running_ || is_closed() || detail::running_loop()) {
        pool->shutdown();  // from a task: the loop waits (asyncio would await it)
        return;
    }
    // The loop idles (corio::run's shutdown): it runs while another thread joins the pool, as
    // asyncio's shutdown_default_executor does, so that a call that reaches back into the loop
    // (call_soon_threadsafe, run_coroutine_threadsafe) is answered instead of waiting for ever.
    std::atomic<bool> joined{false};
    std::thread joiner;
    try {
        joiner = std::thread([&] {
            pool->shutdown();
            joined.store(true, std::memory_order_release);
            try {
                call_soon_threadsafe([] {});  // wakes the loop to see it
            } catch (...) {
            }
        });
    } catch (...) {
        pool->shutdown();
        return;
    }
    try {
        run_until([&] { return joined.load(std::memory_order_acquire); });
    } catch (...) {
    }
    joiner.join();
}

}  // namespace corio
