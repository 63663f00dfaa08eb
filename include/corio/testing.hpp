// The test harness: pytest-asyncio's part, on GoogleTest.
//
//   CORIO_TEST(Fetch, ReturnsUrl) { auto r = co_await fetch_data("u"); EXPECT_EQ(r, "data for u"); }
//
// Each test runs on a fresh loop with a time limit (CORIO_TEST_TIMEOUT seconds, default 60).
// A test fails if it leaves a task running or if anything reaches the exception handler
// (an exception never retrieved, a callback that threw). Fixtures derive from
// corio::testing::AsyncTest and override SetUpAsync() / TearDownAsync(); use CORIO_TEST_F.
// GoogleTest's ASSERT_* macros `return`, which a coroutine cannot: use CO_ASSERT_* instead.
// A test also fails if it leaves a file descriptor open (sockets, pipes, processes' pidfds), an
// I/O operation in the backend, or a call running on the executor's threads.
// A body with no co_await must end with `co_return;` (it has to be a coroutine; the compiler
// warns "no return statement" otherwise).
#pragma once

#include <gtest/gtest.h>

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cxxabi.h>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <typeinfo>
#include <vector>

#include "corio/corio.hpp"

namespace corio::detail {
// "corio::TimeoutError" for a failure's message: what() alone ("timed out") hides the type.
inline std::string type_name_of(const std::type_info& type) {
    int status = 0;
    char* readable = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
    std::string name = status == 0 && readable ? readable : type.name();
    std::free(readable);
    return name;
}

// "timed out (corio::TimeoutError)": what a test threw, for its failure message.
inline std::string thrown_text(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const ExceptionGroup& g) {
        return describe(e) + " (" + type_name_of(typeid(g)) + ")";  // with its members
    } catch (const std::exception& x) {
        return std::string(x.what()) + " (" + type_name_of(typeid(x)) + ")";
    } catch (...) {
        return describe(e);  // corio's exceptions that are no std::exception, by name
    }
}
}  // namespace corio::detail

namespace corio::testing {

// Virtual time for the running loop (Trio's MockClock with autojump): sleeps and timeouts
// complete at once, in virtual time, whenever the loop has nothing else to do. Installed on
// the running loop from construction to destruction.
class MockClock {
public:
    MockClock() : loop_(&get_running_loop()), serial_(loop_->serial()), previous_(loop_->virtual_time()) {
        vt_.now = loop_->time();
        loop_->install_virtual_time(&vt_);
    }
    ~MockClock() {
        // A clock kept in a fixture goes after the test's loop: nothing to hand back then.
        std::unique_lock alive = EventLoop::lock_if_alive(loop_);
        if (!alive || loop_->serial() != serial_) return;
        // The outermost clock hands the loop back to the real clock; the loop carries on from the
        // virtual time reached (see install_virtual_time), so loop time never goes back.
        if (previous_) previous_->now = vt_.now;
        loop_->install_virtual_time(previous_);
    }
    MockClock(const MockClock&) = delete;
    MockClock& operator=(const MockClock&) = delete;

    Clock::time_point now() const noexcept { return vt_.now; }
    // Moves virtual time forward; timers now due fire on the loop's next tick.
    void advance(Clock::duration d) noexcept { vt_.now += d; }
    // Virtual time elapsed since `start`, in (double) seconds: handy in EXPECTs.
    double seconds_since(Clock::time_point start) const noexcept {
        return std::chrono::duration<double>(vt_.now - start).count();
    }

private:
    EventLoop* loop_;
    std::uint64_t serial_;
    detail::VirtualTime* previous_;
    detail::VirtualTime vt_;
};

// Cancel at every suspension point. Runs the scenario `make()` once as a task, counting the K
// suspensions of its tasks (it and every task it starts); then 2K more times, cancelling the
// scenario's task at the k-th of those suspensions (k < K), once
// right at the await and once while it waits there (on the next tick). After every run,
// `check()` asserts the invariants (locks released, permits back, queues consistent...); the
// test's own guard then checks that no task and no fd was left behind. The scenario's own
// cancellation is expected; any other exception fails the run, and a cancellation of the test's
// own task (its time limit) ends the sweep.
struct CancelSweep {
    std::size_t suspension_points = 0;  // K
    std::size_t runs = 0;               // 1 + 2K
    std::size_t cancelled_runs = 0;     // runs that ended in CancelledError
};

template <class Make, class Check>
Coro<CancelSweep> cancel_at_every_suspension(Make make, Check check) {
    EventLoop& loop = get_running_loop();
    CancelSweep sweep;
    const detail::TaskBase* target = nullptr;
    std::size_t seen = 0;
    constexpr std::size_t kNoCancel = ~std::size_t(0);  // the first run counts, cancels nothing
    std::size_t cancel_at = kNoCancel;
    bool while_suspended = false;
    AnyTask running;
    const detail::TaskBase* driver = current_task().state();
    std::vector<const detail::TaskBase*> before;  // tasks that are not the scenario's (a server...)
    loop.set_suspend_hook([&](detail::TaskBase& t) {
        // Every task that appears during the run counts (the scenario's children, the server
        // task serving its connection...): the sweep cancels the scenario's own task at each
        // await that happens anywhere while it runs.
        if (!target || &t == driver || std::find(before.begin(), before.end(), &t) != before.end()) return;
        if (seen++ != cancel_at) return;
        if (while_suspended)
            loop.call_soon([&running] {
                if (running) running.cancel("cancel_at_every_suspension");
            });
        else
            running.cancel("cancel_at_every_suspension");
    });
    auto run_once = [&]() -> Coro<> {
        seen = 0;
        before.clear();
        loop.tasks().for_each([&](detail::TaskBase& t) { before.push_back(&t); });
        Task<> task = create_task(make());
        running = task;
        target = task.state();
        std::exception_ptr failure;
        try {
            co_await task;
        } catch (const CancelledError&) {
            // The test's own task cancelled (its time limit, SIGTERM) reaches the scenario's
            // through this await: the sweep stops, rather than take it for one of its own.
            if (current_task().cancelling() > 0) throw;
            ++sweep.cancelled_runs;
        } catch (...) {
            failure = std::current_exception();
        }
        running = AnyTask();
        target = nullptr;
        ++sweep.runs;
        Coro<> checking = check();
        co_await std::move(checking);
        if (failure) {
            if (cancel_at == kNoCancel)
                ADD_FAILURE() << "cancel_at_every_suspension: the first run (not cancelled) failed: "
                              << detail::describe(failure);
            else
                ADD_FAILURE() << "cancel_at_every_suspension: the run cancelled at suspension " << cancel_at
                              << (while_suspended ? " (while waiting there)" : " (right at the await)")
                              << " failed: " << detail::describe(failure);
            std::rethrow_exception(failure);
        }
    };
    std::exception_ptr error;
    try {
        Coro<> first = run_once();
        co_await std::move(first);
        sweep.suspension_points = seen;
        for (int mode = 0; mode < 2; ++mode) {
            while_suspended = mode == 1;
            for (std::size_t k = 0; k < sweep.suspension_points; ++k) {
                cancel_at = k;
                Coro<> again = run_once();
                co_await std::move(again);
            }
        }
    } catch (...) {
        error = std::current_exception();
    }
    loop.set_suspend_hook({});
    if (error) std::rethrow_exception(error);
    co_return sweep;
}

class AsyncTest : public ::testing::Test {
public:
    virtual Coro<> SetUpAsync() { co_return; }
    virtual Coro<> TearDownAsync() { co_return; }
};

// What CORIO_TEST_TIMEOUT=0 (pytest-timeout's "no limit") or inf gives: a year, which the
// watchdog's clock arithmetic can still hold.
inline constexpr std::chrono::milliseconds no_test_time_limit = std::chrono::hours(24 * 365);

// CORIO_TEST_TIMEOUT in seconds, fractions allowed (the harness's own tests need a short limit).
inline std::chrono::milliseconds test_time_limit() {
    if (const char* s = std::getenv("CORIO_TEST_TIMEOUT"); s && *s) {
        const char* end = s + std::strlen(s);
        while (s != end && (*s == ' ' || *s == '+')) ++s;
        while (end != s && end[-1] == ' ') --end;
        double seconds = 0;
        // Not strtod: a program's setlocale() would make "0.5" half a number. The whole value
        // must be a number: "0,5" is a typo to refuse (default limit), not "0" (no limit).
        const auto [rest, error] = std::from_chars(s, end, seconds);
        const bool whole = rest == end && s != end;
        if (whole && error == std::errc::result_out_of_range && *s != '-') return no_test_time_limit;
        if (whole && error == std::errc() && seconds >= 0) {
            if (seconds == 0 || seconds >= double(std::chrono::duration_cast<std::chrono::seconds>(no_test_time_limit).count()))
                return no_test_time_limit;
            return std::max(std::chrono::milliseconds(1), std::chrono::duration_cast<std::chrono::milliseconds>(
                                                              std::chrono::duration<double>(seconds)));
        }
    }
    return std::chrono::seconds(60);
}

inline std::string format_report(const ExceptionContext& c) {
    std::ostringstream out;
    out << c.message;
    if (!c.task_name.empty()) out << " [task " << c.task_name << "]";
    if (c.exception) out << ": " << detail::describe(c.exception);
    // Where, as the default handler prints it: a stuck task's report is little use without it.
    if (c.location)
        out << (c.location_is_definition ? "\n  defined at: " : "\n  created at: ") << c.location->file_name() << ":"
            << c.location->line();
    if (!c.call_graph.empty()) out << "\n" << c.call_graph;
    return out.str();
}

// Open file descriptors of this process (the leak guard compares them around each test).
inline std::vector<std::string> open_fds() {
    std::vector<std::string> out;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            if (std::atoi(e->d_name) == ::dirfd(d)) continue;
            char target[256] = {};
            std::string link = std::string("/proc/self/fd/") + e->d_name;
            ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
            out.push_back(std::string(e->d_name) + " -> " + (n > 0 ? std::string(target, std::size_t(n)) : "?"));
        }
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

inline void run_async_test(AsyncTest& fixture, std::function<Coro<>()> make_body) {
    // The harness's own failures (a leak, a throw, the time limit) point at the test.
    const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
    const char* test_file = test && test->file() ? test->file() : __FILE__;
    const int test_line = test && test->file() ? test->line() : __LINE__;
    const std::vector<std::string> fds_before = open_fds();
    std::vector<std::string> reports;
    Runner runner;
    EventLoop& loop = runner.get_loop();
    loop.set_exception_handler(
        [&](EventLoop&, const ExceptionContext& c) { reports.push_back(format_report(c)); });

    const std::chrono::milliseconds limit = test_time_limit();
    const auto started = std::chrono::steady_clock::now();
    std::mutex m;
    std::condition_variable cv;
    // The watchdog posts to the loop only in Body, and only under `m`: Runner::close() destroys
    // the loop, and it runs after the phase has moved on (under `m`).
    enum class Phase { Body, Closing, Done } phase = Phase::Body;
    std::atomic<bool> timed_out{false};
    AnyTask main;
    std::thread watchdog([&] {
        std::unique_lock lock(m);
        if (!cv.wait_for(lock, limit, [&] { return phase != Phase::Body; })) {
            timed_out = true;
            // Cancelled once, a test can still hang (a TearDownAsync, a generator's cleanup or a
            // task left behind that waits for ever): the cancel is repeated until the test's task
            // ends, as a limit must end the test. An exception escaping a std::thread ends the
            // process: the overrun is reported as a failure instead, whether or not the
            // cancellation could be delivered.
            const auto again = std::clamp<std::chrono::milliseconds>(limit / 4, std::chrono::milliseconds(10),
                                                                     std::chrono::seconds(1));
            do {
                try {
                    loop.call_soon_threadsafe([&main] {
                        if (main) main.cancel("the test's time limit ran out");
                    });
                } catch (...) {
                }
            } while (!cv.wait_for(lock, again, [&] { return phase != Phase::Body; }));
        }
        // The loop's shutdown cancels what is left and waits for it: a task that swallows every
        // cancellation would hang the test binary for ever, where the limit must end it.
        // (A close that is merely slow, a callback's capture that takes a while to release, is
        // the overrun failure below: the bound is generous.)
        const auto closing = std::max<std::chrono::milliseconds>(limit, std::chrono::seconds(5));
        if (cv.wait_for(lock, closing, [&] { return phase == Phase::Done; })) return;
        std::fprintf(stderr,
                     "corio::testing: the test's loop did not close within %lld ms of the test's end: a task "
                     "left behind swallows every cancellation (the shutdown cancels what is left and waits "
                     "for it), or a thread call still runs (the shutdown joins it). Aborting the test run.\n",
                     static_cast<long long>(closing.count()));
        std::fflush(nullptr);
        std::abort();
    });
    auto enter_phase = [&](Phase next) noexcept {
        {
            std::lock_guard lock(m);
            phase = next;
        }
        cv.notify_all();
    };
    // The watchdog must be gone before the loop is (also when something below throws: a
    // joinable std::thread's destructor ends the process).
    auto stop_watchdog = [&]() noexcept {
        if (!watchdog.joinable()) return;
        enter_phase(Phase::Done);
        watchdog.join();
    };
    struct StopAtExit {
        decltype(stop_watchdog)& stop;
        ~StopAtExit() { stop(); }
    } stop_at_exit{stop_watchdog};

    auto body = [&]() -> Coro<> {
        main = current_task();
        std::exception_ptr error;
        try {
            Coro<> setup = fixture.SetUpAsync();
            co_await std::move(setup);
            // As GoogleTest's Test::Run: a fatal failure or GTEST_SKIP() in the set-up skips the
            // body, which would run on a half-made fixture.
            if (!::testing::Test::HasFatalFailure() && !::testing::Test::IsSkipped()) {
                Coro<> test = make_body();
                co_await std::move(test);
            }
        } catch (...) {
            error = std::current_exception();
        }
        // A TearDownAsync that throws fails the test too, without hiding the body's failure
        // or skipping the checks below.
        try {
            Coro<> teardown = fixture.TearDownAsync();
            co_await std::move(teardown);
        } catch (...) {
            if (!error)
                error = std::current_exception();
            else
                ADD_FAILURE_AT(test_file, test_line) << "TearDownAsync threw: " << detail::thrown_text(std::current_exception());
        }
        // A generator the test left early is closed by a task of its own, started as it was
        // dropped: that is the test's cleanup still running, not a task left behind. Closing one
        // may drop another (nested generators): look again until none is left. The time limit
        // (a cancellation of this task) ends the wait; the closers are then reported below.
        for (;;) {
            std::vector<AnyTask> closers;
            std::vector<detail::FutureBase*> closing;
            for (auto& t : all_tasks()) {
                if (t == main || t.name() != detail::kAsyncGenCloserName) continue;
                closers.push_back(t);
                closing.push_back(t.state());
            }
            if (closing.empty()) break;
            bool interrupted = false;
            try {
                detail::TaskSetWaiter closed(std::move(closing), detail::TaskSetWaiter::Until::AllDone);
                co_await closed;
            } catch (const CancelledError&) {
                interrupted = true;
                if (!error) error = std::current_exception();
            }
            if (interrupted) break;
        }
        // Structured concurrency is the rule: a test must not leave tasks behind.
        std::vector<AnyTask> left;
        for (auto& t : all_tasks())
            if (!(t == main)) left.push_back(t);
        if (!left.empty()) {
            std::string names;
            for (auto& t : left) {
                names += ' ';
                names += t.name();
            }
            ADD_FAILURE_AT(test_file, test_line)
                << "the test left " << left.size() << " task(s) running:" << names;
            for (auto& t : left) t.cancel();
            for (auto& t : left) {
                while (!t.done()) co_await sleep(Clock::duration::zero());
                t.state()->mark_retrieved();
            }
        }
        // Nor may it leave I/O in the backend or calls on the executor's threads: a thread call
        // whose awaiter was cancelled may still be finishing, and on io_uring the cancellation
        // of a closed stream's receive completes in the kernel a moment after close() returned
        // (seen in 1 run of 3 under load), so give each a (real) moment.
        EventLoop& l = get_running_loop();
        for (int i = 0; i < 5000 && l.external_work() != 0; ++i) co_await sleep(std::chrono::milliseconds(1));
        const auto io_give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        while (l.pending_io() != 0 && std::chrono::steady_clock::now() < io_give_up)
            co_await sleep(std::chrono::milliseconds(1));
        co_await sleep(Clock::duration::zero());
        if (l.external_work() != 0)
            ADD_FAILURE_AT(test_file, test_line)
                << "the test left " << l.external_work() << " thread call(s) running";
        if (l.pending_io() != 0)
            ADD_FAILURE_AT(test_file, test_line)
                << "the test left " << l.pending_io() << " I/O operation(s) in the backend";
        if (error) std::rethrow_exception(error);
    };
    // Ctrl-C (a signal the runner took), not a KeyboardInterrupt the test threw itself.
    int interrupted_by = 0;
    (void)detail::take_runner_interrupt();
    auto interrupted = [&](const KeyboardInterrupt& k) {
        const int sig = detail::take_runner_interrupt();
        if (sig == 0) return false;
        if (interrupted_by == 0) ADD_FAILURE_AT(test_file, test_line) << "the test run was interrupted: " << k.what();
        interrupted_by = sig;
        return true;
    };
    try {
        runner.run(body());
    } catch (const CancelledError& e) {
        ADD_FAILURE_AT(test_file, test_line) << "the test was cancelled: " << e.what();
    } catch (const KeyboardInterrupt& k) {
        if (!interrupted(k)) ADD_FAILURE_AT(test_file, test_line) << "the test threw: KeyboardInterrupt (" << k.what() << ")";
    } catch (...) {
        ADD_FAILURE_AT(test_file, test_line) << "the test threw: " << detail::thrown_text(std::current_exception());
    }
    enter_phase(Phase::Closing);
    try {
        runner.close();  // a signal during the shutdown is its KeyboardInterrupt
    } catch (const KeyboardInterrupt& k) {
        if (!interrupted(k)) ADD_FAILURE_AT(test_file, test_line) << "closing the test's loop threw: KeyboardInterrupt";
    } catch (...) {
        ADD_FAILURE_AT(test_file, test_line) << "closing the test's loop threw: " << detail::thrown_text(std::current_exception());
    }
    stop_watchdog();
    const auto took = std::chrono::steady_clock::now() - started;
    // Formatted here: GoogleTest's messages print a double with all 17 digits.
    auto to_seconds = [](auto d) {
        std::ostringstream out;
        out << std::chrono::duration<double>(d).count();
        return out.str();
    };
    if (timed_out) {
        ADD_FAILURE_AT(test_file, test_line) << "the test ran longer than " << to_seconds(limit) << " s";
    } else if (took > limit) {
        // Nothing is left to cancel while the runner shuts down; the overrun still fails the test.
        ADD_FAILURE_AT(test_file, test_line)
            << "the test ran longer than " << to_seconds(limit) << " s (" << to_seconds(took)
            << " s, closing its loop included)";
    }
    for (auto& r : reports) ADD_FAILURE_AT(test_file, test_line) << "reported by the event loop: " << r;
    // Nothing may outlive the test's loop: every socket, pipe and process fd is closed.
    const std::vector<std::string> fds_after = open_fds();
    if (fds_after != fds_before) {
        std::string diff;
        for (auto& f : fds_after)
            if (!std::binary_search(fds_before.begin(), fds_before.end(), f)) diff += "\n  leaked fd " + f;
        if (!diff.empty()) ADD_FAILURE_AT(test_file, test_line) << "the test leaked file descriptors:" << diff;
    }
    // Ctrl-C (or SIGTERM) stops the whole run, as it stops a plain GoogleTest binary and as
    // KeyboardInterrupt ends a pytest session; each test's own runner would otherwise take it
    // as one more failure, and a CI time limit's SIGTERM could not stop a long suite.
    if (interrupted_by != 0) {
        std::fprintf(stderr, "corio::testing: %s: the test run stops\n", KeyboardInterrupt(interrupted_by).what());
        std::fflush(nullptr);
        std::signal(interrupted_by, SIG_DFL);
        std::raise(interrupted_by);
    }
}

}  // namespace corio::testing

#define CORIO_TEST_IMPL_(suite, name, base)                                                                     \
    class suite##_##name##_CorioTest : public base {                                                            \
    public:                                                                                                     \
        ::corio::Coro<> CoBody();                                                                               \
        void TestBody() override {                                                                              \
            ::corio::testing::run_async_test(*this, [this] { return CoBody(); });                               \
        }                                                                                                       \
    };                                                                                                          \
    [[maybe_unused]] static ::testing::TestInfo* const suite##_##name##_corio_registered =                     \
        ::testing::RegisterTest(#suite, #name, nullptr, nullptr, __FILE__, __LINE__,                            \
                                []() -> base* { return new suite##_##name##_CorioTest(); });                    \
    ::corio::Coro<> suite##_##name##_CorioTest::CoBody()

// @pytest.mark.asyncio async def test_...: the body is a coroutine.
#define CORIO_TEST(suite, name) CORIO_TEST_IMPL_(suite, name, ::corio::testing::AsyncTest)
// The same with an async fixture (SetUpAsync / TearDownAsync); the body reaches its members.
#define CORIO_TEST_F(fixture, name) CORIO_TEST_IMPL_(fixture, name, fixture)

// A fatal failure, as ASSERT_*'s, without its `return` (GTEST_FATAL_FAILURE_ returns).
#define CORIO_CO_ASSERT_FAILURE_() GTEST_MESSAGE_("Failed", ::testing::TestPartResult::kFatalFailure)
#define CO_ASSERT_TRUE(cond)                                                          \
    do {                                                                              \
        if (!static_cast<bool>(cond)) {                                               \
            CORIO_CO_ASSERT_FAILURE_() << "Value of: " #cond "\n  Actual: false\nExpected: true"; \
            co_return;                                                                \
        }                                                                             \
    } while (0)
#define CO_ASSERT_FALSE(cond)                                                         \
    do {                                                                              \
        if (static_cast<bool>(cond)) {                                                \
            CORIO_CO_ASSERT_FAILURE_() << "Value of: " #cond "\n  Actual: true\nExpected: false"; \
            co_return;                                                                \
        }                                                                             \
    } while (0)
// GoogleTest's own comparison (what EXPECT_EQ reports), so that only this check's failure
// returns, not an earlier EXPECT's.
#define CO_ASSERT_EQ(a, b) CORIO_CO_ASSERT_CMP_(EqHelper::Compare, a, b)
#define CO_ASSERT_NE(a, b) CORIO_CO_ASSERT_CMP_(CmpHelperNE, a, b)
#define CO_ASSERT_LT(a, b) CORIO_CO_ASSERT_CMP_(CmpHelperLT, a, b)
#define CO_ASSERT_LE(a, b) CORIO_CO_ASSERT_CMP_(CmpHelperLE, a, b)
#define CO_ASSERT_GT(a, b) CORIO_CO_ASSERT_CMP_(CmpHelperGT, a, b)
#define CO_ASSERT_GE(a, b) CORIO_CO_ASSERT_CMP_(CmpHelperGE, a, b)
#define CORIO_CO_ASSERT_CMP_(helper, a, b)                                                          \
    do {                                                                                            \
        const ::testing::AssertionResult corio_cmp_ = ::testing::internal::helper(#a, #b, a, b);  \
        if (!corio_cmp_) {                                                                          \
            CORIO_CO_ASSERT_FAILURE_() << corio_cmp_.message();                                     \
            co_return;                                                                              \
        }                                                                                           \
    } while (0)
