// Helpers the core suites share: virtual-time stamps for event logs ("close a@2000"), and
// number formatting that steers clear of a g++ 12 -Wrestrict false positive
// (`"literal" + std::to_string(n)`).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include <corio/corio.hpp>

namespace corio_test {

// "<prefix><n>".
inline std::string str(const char* prefix, long long n) {
    std::string s = prefix;
    s += std::to_string(n);
    return s;
}

// Milliseconds of the loop's clock since t0 (exact in virtual time).
inline double ms_since(corio::Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(corio::get_running_loop().time() - t0).count();
}

// "<what>@<ms since t0>".
inline std::string tag(std::string what, corio::Clock::time_point t0) {
    what += '@';
    what += std::to_string(int(ms_since(t0)));
    return what;
}

// asyncio's graceful shutdown: sleeps until cancelled, then cleans up for `cleanup` (awaiting)
// and lets the cancellation go on: no swallow.
inline corio::Coro<> cleans_up_then_rethrows(corio::Clock::duration cleanup) {
    bool cancelled = false;
    try {
        co_await corio::sleep(std::chrono::seconds(10));
    } catch (const corio::CancelledError&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await corio::sleep(cleanup);
        throw corio::CancelledError();
    }
}

// The guides' worker loop that swallows its cancellation: it never returns, so the report at
// its return never comes (and a shutdown waiting for it hangs without a word).
inline corio::Coro<> swallowing_worker(const bool* stop) {
    while (!*stop) {
        try {
            co_await corio::sleep(std::chrono::seconds(10));
        } catch (const corio::CancelledError&) {
        }
    }
}

// How many of `reports` say that task `task` is still running after its cancellation.
inline std::size_t still_running_reports(const std::vector<corio::ExceptionContext>& reports, const std::string& task) {
    std::size_t n = 0;
    for (const auto& r : reports)
        if (r.message.find("Task " + task + " is still running") != std::string::npos) ++n;
    return n;
}

// Installs a handler on the running loop that copies every report into `out` (which outlives
// the loop: the handler stays for the shutdown, when the loop is gone it is gone too).
inline void capture_reports(std::vector<corio::ExceptionContext>* out) {
    corio::get_running_loop().set_exception_handler(
        [out](corio::EventLoop&, const corio::ExceptionContext& c) { out->push_back(c); });
}

// Installs a capturing exception handler on the running loop for one test, and puts the
// harness's handler back afterwards (so that any later report still fails the test).
struct CapturedReports {
    CapturedReports() : loop(corio::get_running_loop()), previous(loop.get_exception_handler()) {
        loop.set_exception_handler([this](corio::EventLoop&, const corio::ExceptionContext& c) { reports.push_back(c); });
    }
    ~CapturedReports() { loop.set_exception_handler(previous); }
    CapturedReports(const CapturedReports&) = delete;
    CapturedReports& operator=(const CapturedReports&) = delete;

    corio::EventLoop& loop;
    corio::EventLoop::ExceptionHandler previous;
    std::vector<corio::ExceptionContext> reports;
};

// "[message] [message] ...": every report's message, for a failure's explanation.
inline std::string all_messages(const std::vector<corio::ExceptionContext>& reports) {
    std::string s;
    for (const auto& r : reports) s += "[" + r.message + "] ";
    return s;
}

}  // namespace corio_test
