// corio::run's main task and options: the main task's name "main" and its created_at() with
// and without debug mode; CORIO_DEBUG and RunOptions::introspect / CORIO_INTROSPECT.
#include <corio/debug.hpp>
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <source_location>
#include <string>
#include <utility>

using namespace corio;
using namespace std::chrono_literals;

namespace {

// Sets (or, with nullptr, unsets) an environment variable for one test; puts the old value back.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) previous_ = old;
        (void)(value ? ::setenv(name, value, 1) : ::unsetenv(name));
    }
    ~ScopedEnv() { (void)(previous_ ? ::setenv(name_.c_str(), previous_->c_str(), 1) : ::unsetenv(name_.c_str())); }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    std::string name_;
    std::optional<std::string> previous_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The main task (runners.md:16, 77; task.md:77-80)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<std::string> own_name() {
    auto tick = sleep(0s);
    co_await std::move(tick);
    co_return current_task().name();
}

Coro<std::source_location> own_creation_site() {
    auto tick = sleep(0s);
    co_await std::move(tick);
    co_return current_task().created_at();
}

Coro<> idle() { co_return; }

// Where create_task was called for a child, and that call's line.
Coro<std::pair<std::source_location, int>> child_creation_site() {
    const int line = __LINE__ + 1;
    Task<> child = create_task(idle());
    co_await child;
    co_return std::pair{child.created_at(), line};
}
}  // namespace

// runners.md:16, 77: corio::run and Runner::run run main as a task named "main".
TEST(RunMainTask, MainTaskIsNamedMain) {
    EXPECT_EQ(corio::run(own_name()), "main");
    Runner runner;
    EXPECT_EQ(runner.run(own_name()), "main");
    EXPECT_EQ(runner.run(own_name()), "main");
}

// task.md:77-78: in debug mode created_at() is where run (or create_task) was called.
TEST(RunMainTask, CreatedAtIsTheCallSiteInDebugMode) {
    ScopedEnv no_introspect("CORIO_INTROSPECT", nullptr);
    RunOptions options;
    options.debug = true;
    const int line = __LINE__ + 1;
    std::source_location at = corio::run(own_creation_site(), std::move(options));
    EXPECT_STREQ(at.file_name(), __FILE__);
    EXPECT_EQ(at.line(), std::uint_least32_t(line));

    RunOptions debug_again;
    debug_again.debug = true;
    auto [child_at, child_line] = corio::run(child_creation_site(), std::move(debug_again));
    EXPECT_STREQ(child_at.file_name(), __FILE__);
    EXPECT_EQ(child_at.line(), std::uint_least32_t(child_line));
}

// task.md:78-79: without debug mode (nor introspection) created_at() is empty: file "", line 0.
TEST(RunMainTask, CreatedAtIsEmptyWithoutDebugMode) {
    ScopedEnv no_debug("CORIO_DEBUG", nullptr);
    ScopedEnv no_introspect("CORIO_INTROSPECT", nullptr);
    std::source_location at = corio::run(own_creation_site());
    EXPECT_STREQ(at.file_name(), "");
    EXPECT_EQ(at.line(), 0u);
    auto [child_at, child_line] = corio::run(child_creation_site());
    EXPECT_STREQ(child_at.file_name(), "");
    EXPECT_EQ(child_at.line(), 0u);
}

// ---------------------------------------------------------------------------------------------
// The environment (runners.md:48-49, 59-60; loop.md:91)
// ---------------------------------------------------------------------------------------------

namespace {
Coro<bool> debug_is_on() {
    auto tick = sleep(0s);
    co_await std::move(tick);
    co_return get_running_loop().get_debug();
}

bool new_loop_debug() {
    EventLoop loop;
    const bool on = loop.get_debug();
    loop.close();
    return on;
}
}  // namespace

// runners.md:48-49, loop.md:91: CORIO_DEBUG (not 0) turns debug mode on, in run() and in a hand-made EventLoop.
TEST(RunEnvironment, CorioDebugTurnsDebugModeOn) {
    for (const char* value : {"1", "yes"}) {
        ScopedEnv debug("CORIO_DEBUG", value);
        EXPECT_TRUE(corio::run(debug_is_on())) << "CORIO_DEBUG=" << value;
        EXPECT_TRUE(new_loop_debug()) << "CORIO_DEBUG=" << value;
    }
}

// runners.md:48-49: CORIO_DEBUG=0, or unset, leaves debug mode off.
TEST(RunEnvironment, CorioDebugZeroOrUnsetLeavesDebugModeOff) {
    {
        ScopedEnv debug("CORIO_DEBUG", "0");
        EXPECT_FALSE(corio::run(debug_is_on()));
        EXPECT_FALSE(new_loop_debug());
    }
    {
        ScopedEnv debug("CORIO_DEBUG", nullptr);
        EXPECT_FALSE(corio::run(debug_is_on()));
        EXPECT_FALSE(new_loop_debug());
    }
}

namespace {
// Asks the running loop's introspection endpoint for its task table ("" when nobody serves).
Coro<std::string> task_table_over_the_socket() {
    const std::string path = introspection_socket_path(::getpid());
    if (!std::filesystem::exists(path)) co_return "";
    Coro<std::string> asking = corio_test::unix_request(path, "ps\n");
    co_return co_await std::move(asking);
}
}  // namespace

// runners.md:59-60: RunOptions::introspect serves the task table (with "main") on the socket, gone after the run.
TEST(RunEnvironment, IntrospectOptionServesTheTaskTableDuringTheRun) {
    ScopedEnv no_introspect("CORIO_INTROSPECT", nullptr);
    RunOptions options;
    options.introspect = true;
    std::string table = corio::run(task_table_over_the_socket(), std::move(options));
    EXPECT_NE(table.find("main"), std::string::npos) << table;
    EXPECT_FALSE(std::filesystem::exists(introspection_socket_path(::getpid())));
    EXPECT_EQ(corio::run(task_table_over_the_socket()), "");  // off by default
}

// runners.md:60: CORIO_INTROSPECT set (to anything but 0) turns it on; CORIO_INTROSPECT=0 does not.
TEST(RunEnvironment, CorioIntrospectTurnsIntrospectionOn) {
    {
        ScopedEnv on("CORIO_INTROSPECT", "1");
        std::string table = corio::run(task_table_over_the_socket());
        EXPECT_NE(table.find("main"), std::string::npos) << table;
    }
    {
        ScopedEnv off("CORIO_INTROSPECT", "0");
        EXPECT_EQ(corio::run(task_table_over_the_socket()), "");
    }
}

