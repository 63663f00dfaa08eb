// Helpers the blocking-code suites share (tests/test_executor.cpp, test_executor_shutdown.cpp):
// a gate a worker thread waits at, a one-shot signal from a worker thread to a task on the loop,
// and the safety bound on every wait for another thread (a broken build fails instead of
// hanging forever).
#pragma once

#include <corio/corio.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace corio_test {

inline constexpr auto kSafetyBound = std::chrono::seconds(30);

// A gate a worker thread waits at until the test opens it.
class Gate {
public:
    void open() {
        {
            std::lock_guard lock(m_);
            open_ = true;
        }
        cv_.notify_all();
    }
    // True when opened; false when the safety bound ran out.
    bool wait() {
        std::unique_lock lock(m_);
        return cv_.wait_for(lock, kSafetyBound, [&] { return open_; });
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

// A one-shot signal from a worker thread to a task on the loop: the worker calls set() (through
// call_soon_threadsafe), the task awaits future(). The Future is touched on the loop thread only.
class LoopSignal {
public:
    LoopSignal() : loop_(corio::get_running_loop()), fut_(loop_) {}
    void set_from_any_thread() {
        loop_.call_soon_threadsafe([f = &fut_] {
            if (!f->done()) f->set_result();
        });
    }
    corio::Future<>& future() { return fut_; }

private:
    corio::EventLoop& loop_;
    corio::Future<> fut_;
};

}  // namespace corio_test
