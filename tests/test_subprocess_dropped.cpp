// A Process dropped while its child runs: the child runs on and is reaped by a thread
// (subprocess.md, "Differs"), and debug mode says so, as asyncio's ResourceWarning ("unclosed
// transport") does: the program lost track of a child it started.
#include <corio/subprocess.hpp>
#include <corio/testing.hpp>

#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

#include "child_support.hpp"
#include "core_support.hpp"

using namespace corio;
using namespace std::chrono_literals;
using corio_test::all_messages;
using corio_test::CapturedReports;
using corio_test::live_children;

namespace {

// Debug mode on for the test's loop, without its slow-step reports (a spawn on a loaded machine
// may take long enough to be one).
void debug_mode_on(EventLoop& loop) {
    loop.set_debug(true);
    loop.slow_callback_duration = std::chrono::hours(1);
}

std::vector<std::string> drop_reports(const std::vector<ExceptionContext>& reports) {
    std::vector<std::string> out;
    for (const auto& r : reports)
        if (r.message.find("a Process was dropped") != std::string::npos) out.push_back(r.message);
    return out;
}

// Spawns a long sleeper and drops it; returns its pid.
Coro<int> drop_a_running_child() {
    std::vector<std::string> argv{"sleep", "30"};
    Coro<Process> spawning = create_subprocess_exec(std::move(argv), {.out = PIPE});
    Process p = co_await std::move(spawning);
    co_return p.pid();
}

// The reaper thread waits for the child: kill it (not yet reaped, so the pid is still its own)
// and let the thread reap it, waiting in real time (an external process), bounded at 10 s.
Coro<> kill_and_see_it_reaped(int pid) {
    ::kill(pid, SIGKILL);
    for (int i = 0; i < 1000 && !live_children().empty(); ++i) {
        auto pause = sleep(10ms);
        co_await std::move(pause);
    }
    EXPECT_TRUE(live_children().empty());
}

}  // namespace

CORIO_TEST(SubprocessDropped, InDebugModeADroppedRunningChildIsReported) {
    CapturedReports captured;
    debug_mode_on(captured.loop);
    Coro<int> dropping = drop_a_running_child();
    const int pid = co_await std::move(dropping);
    captured.loop.set_debug(false);
    const std::vector<std::string> dropped = drop_reports(captured.reports);
    EXPECT_EQ(dropped.size(), 1u) << all_messages(captured.reports);
    if (dropped.size() == 1) {
        EXPECT_EQ(dropped[0], "a Process was dropped while its child (pid " + std::to_string(pid) +
                                  ") is still running: kill() it and wait() first, or wait() for it");
    }
    co_await kill_and_see_it_reaped(pid);
}

CORIO_TEST(SubprocessDropped, WithoutDebugModeNothingIsReported) {
    CapturedReports captured;
    captured.loop.set_debug(false);  // whatever CORIO_DEBUG says
    Coro<int> dropping = drop_a_running_child();
    const int pid = co_await std::move(dropping);
    EXPECT_TRUE(drop_reports(captured.reports).empty()) << all_messages(captured.reports);
    co_await kill_and_see_it_reaped(pid);
}

CORIO_TEST(SubprocessDropped, InDebugModeAChildWaitedForIsNotReported) {
    CapturedReports captured;
    debug_mode_on(captured.loop);
    {
        std::vector<std::string> argv{"true"};
        Coro<Process> spawning = create_subprocess_exec(std::move(argv));
        Process p = co_await std::move(spawning);
        const int code = co_await p.wait();
        EXPECT_EQ(code, 0);
    }
    captured.loop.set_debug(false);
    EXPECT_TRUE(drop_reports(captured.reports).empty()) << all_messages(captured.reports);
}
