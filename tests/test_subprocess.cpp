// Subprocesses: real children, real pipes. Every test checks that no pipe is left open and no
// child is left a zombie.
#include <corio/subprocess.hpp>
#include <corio/testing.hpp>

#include "child_support.hpp"
#include "net_support.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::live_children;
using corio_test::open_fd_set;
using corio_test::open_fds;
using corio_test::settle;

namespace {

// Plain functions that build the Coro, so that argv and options (temporaries) never sit in a
// co_await operand.
Coro<Process> exec(std::vector<std::string> argv, SubprocessOptions options = {}) {
    return create_subprocess_exec(std::move(argv), std::move(options));
}
Coro<Process> shell(std::string command, SubprocessOptions options = {}) {
    return create_subprocess_shell(std::move(command), std::move(options));
}

// The children of this process that still exist (running or zombie), from every thread's
// /proc/self/task/<tid>/children.
// Field 3 (state) and 22 (start time) of /proc/<pid>/stat, or nothing if it is gone.
std::optional<std::pair<char, unsigned long long>> proc_stat(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string text;
    if (!std::getline(in, text)) return std::nullopt;
    auto close_paren = text.rfind(')');
    if (close_paren == std::string::npos) return std::nullopt;
    std::istringstream rest(text.substr(close_paren + 2));
    char state = '?';
    rest >> state;
    std::string field;
    for (int i = 4; i < 22; ++i) rest >> field;
    unsigned long long start = 0;
    rest >> start;
    return std::make_pair(state, start);
}

}  // namespace

CORIO_TEST(Subprocess, CommunicateUppercasesThroughPython) {
    Coro<Process> spawning = exec({"python3", "-c", "print(input().upper())"}, {.in = PIPE, .out = PIPE});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate("hello\n");
    auto [out, err] = co_await std::move(talking);
    EXPECT_EQ(out, "HELLO\n");
    EXPECT_EQ(err, "");
    int code = co_await p.wait();
    EXPECT_EQ(code, 0);
    EXPECT_EQ(p.returncode(), 0);
}

CORIO_TEST(Subprocess, CommunicateWithStdinStdoutAndStderr) {
    Coro<Process> spawning =
        shell("tr a-z A-Z; echo 'to stderr' >&2; exit 5", {.in = PIPE, .out = PIPE, .err = PIPE});
    Process p = co_await std::move(spawning);
    EXPECT_GT(p.pid(), 0);
    EXPECT_FALSE(p.returncode().has_value());
    Coro<std::pair<std::string, std::string>> talking = p.communicate("some input\nover two lines\n");
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, "SOME INPUT\nOVER TWO LINES\n");
    EXPECT_EQ(result.second, "to stderr\n");
    EXPECT_EQ(p.returncode(), 5);
    int code = co_await p.wait();  // waiting again returns the same code
    EXPECT_EQ(code, 5);
}

CORIO_TEST(Subprocess, ShellExitCodeAndStderr) {
    Coro<Process> spawning = shell("echo oops >&2; exit 3", {.out = PIPE, .err = PIPE});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate();
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, "");
    EXPECT_EQ(result.second, "oops\n");
    EXPECT_EQ(p.returncode(), 3);
}

CORIO_TEST(Subprocess, WaitReturnsTheExitCode) {
    for (int expected : {0, 1, 42, 255}) {
        Coro<Process> spawning = shell("exit " + std::to_string(expected));
        Process p = co_await std::move(spawning);
        int code = co_await p.wait();
        EXPECT_EQ(code, expected);
        EXPECT_EQ(p.returncode(), expected);
    }
}

CORIO_TEST(Subprocess, KilledChildReportsMinusSignal) {
    Coro<Process> spawning = exec({"sleep", "100"});
    Process p = co_await std::move(spawning);
    p.kill();
    int code = co_await p.wait();
    EXPECT_EQ(code, -SIGKILL);
}

CORIO_TEST(Subprocess, TerminateAndSendSignal) {
    Coro<Process> spawning_a = exec({"sleep", "100"});
    Process a = co_await std::move(spawning_a);
    a.terminate();
    int code_a = co_await a.wait();
    EXPECT_EQ(code_a, -SIGTERM);

    Coro<Process> spawning_b = exec({"sleep", "100"});
    Process b = co_await std::move(spawning_b);
    b.send_signal(SIGUSR1);  // default action: terminate
    int code_b = co_await b.wait();
    EXPECT_EQ(code_b, -SIGUSR1);
    // Signalling a child that has been reaped: asyncio's ProcessLookupError (ESRCH).
    EXPECT_THROW(b.send_signal(SIGTERM), ProcessLookupError);
    try {
        b.kill();
        ADD_FAILURE() << "kill() after the child was reaped did not throw";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ESRCH);
    }
    EXPECT_EQ(b.returncode(), -SIGUSR1);
    // An empty Process has no child to signal; its streams and wait() are refused.
    Process empty;
    EXPECT_NO_THROW(empty.terminate());
    EXPECT_THROW((void)empty.wait(), std::logic_error);
    EXPECT_THROW((void)empty.out(), std::logic_error);
}

CORIO_TEST(Subprocess, ChildStartsWithDefaultSignalDispositions) {
    // The test process ignores SIGPIPE (the loop's backend does that); the child must not.
    Coro<Process> spawning = shell("kill -PIPE $$; sleep 5");
    Process p = co_await std::move(spawning);
    int code = co_await p.wait();
    EXPECT_EQ(code, -SIGPIPE);
}

// Popen's restore_signals: only SIGPIPE and SIGXFSZ are reset; a signal the parent ignores on
// purpose (nohup, trap '' HUP) stays ignored in the child.
CORIO_TEST(Subprocess, ASignalTheParentIgnoresStaysIgnoredInTheChild) {
    struct sigaction old {};
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGHUP, &ignore, &old);
    Coro<Process> spawning = shell("kill -HUP $$; echo survived", {.out = PIPE});
    Process p = co_await std::move(spawning);
    ::sigaction(SIGHUP, &old, nullptr);
    Coro<std::pair<std::string, std::string>> talking = p.communicate();
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, "survived\n");
    EXPECT_EQ(p.returncode(), 0);
}

// Popen's close_fds: an fd the application opened without O_CLOEXEC does not reach the child.
CORIO_TEST(Subprocess, TheChildGetsOnlyTheStandardFds) {
    int leaky = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC
    CO_ASSERT_TRUE(leaky > 2);
    std::string probe = "test -e /proc/self/fd/" + std::to_string(leaky) + " && echo inherited || echo closed";
    Coro<Process> spawning = shell(probe, {.out = PIPE});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate();
    std::pair<std::string, std::string> result = co_await std::move(talking);
    ::close(leaky);
    EXPECT_EQ(result.first, "closed\n");
}

// Popen's pass_fds: the child keeps those, at their numbers, even when made with O_CLOEXEC; the
// others are still closed.
CORIO_TEST(Subprocess, PassFdsReachTheChildAtTheirNumbers) {
    int other = ::open("/dev/null", O_RDONLY);  // not passed, no O_CLOEXEC, below the passed one
    CO_ASSERT_TRUE(other > 2);
    int channel[2];
    CO_ASSERT_EQ(::pipe2(channel, O_CLOEXEC), 0);
    CO_ASSERT_TRUE(channel[1] > other);
    // dash's >&N takes one digit only: the fd is written through its /proc path instead.
    std::string script = "echo through > /proc/self/fd/" + std::to_string(channel[1]) + "; test -e /proc/self/fd/" +
                         std::to_string(other) + " && echo inherited || echo closed";
    Coro<Process> spawning = shell(script, {.out = PIPE, .pass_fds = {channel[1]}});
    Process p = co_await std::move(spawning);
    ::close(channel[1]);  // the child's copy is the only writer now
    Coro<std::pair<std::string, std::string>> talking = p.communicate();
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, "closed\n");
    EXPECT_EQ(p.returncode(), 0);
    char got[32] = {};
    EXPECT_EQ(::read(channel[0], got, sizeof got), 8);  // "through\n", then the end
    EXPECT_EQ(std::string(got), "through\n");
    ::close(channel[0]);
    ::close(other);
    std::vector<std::string> argv{"true"};
    Coro<Process> refused = exec(argv, {.pass_fds = {-1}});
    bool invalid = false;
    try {
        (void)co_await std::move(refused);
    } catch (const std::invalid_argument&) {
        invalid = true;
    }
    EXPECT_TRUE(invalid);
}

// Popen looks the program up on the PATH of the env it is given; a missing cwd is named.
CORIO_TEST(Subprocess, TheProgramIsFoundOnThePathOfTheGivenEnv) {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / ("corio-path-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    {
        std::ofstream script(dir / "corio-only-here");
        script << "#!/bin/sh\necho found\n";
    }
    std::filesystem::permissions(dir / "corio-only-here", std::filesystem::perms::owner_all);
    // A directory of that name earlier on the PATH is passed over, as execvp() does.
    std::filesystem::create_directories(dir / "shadow" / "corio-only-here");
    std::vector<std::string> env{"PATH=" + (dir / "shadow").string() + ":" + dir.string()};
    Coro<Process> spawning = exec({"corio-only-here"}, {.out = PIPE, .env = env});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate();
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, "found\n");
    // A relative entry is relative to the child's cwd, where the program runs.
    std::vector<std::string> relative{"PATH=."};
    Coro<Process> spawning_rel = exec({"corio-only-here"}, {.out = PIPE, .cwd = dir.string(), .env = relative});
    Process q = co_await std::move(spawning_rel);
    Coro<std::pair<std::string, std::string>> talking_rel = q.communicate();
    std::pair<std::string, std::string> result_rel = co_await std::move(talking_rel);
    EXPECT_EQ(result_rel.first, "found\n");
    std::filesystem::remove_all(dir);

    std::string what;
    try {
        Coro<Process> nowhere = exec({"true"}, {.cwd = "/nonexistent/corio-dir"});
        Process r = co_await std::move(nowhere);
    } catch (const std::system_error& e) {
        what = e.what();
    }
    EXPECT_NE(what.find("/nonexistent/corio-dir"), std::string::npos) << what;
}

CORIO_TEST(Subprocess, DevnullForStdinAndStdout) {
    // stdin from /dev/null: cat sees EOF at once.
    Coro<Process> spawning_a = exec({"cat"}, {.in = DEVNULL, .out = PIPE});
    Process a = co_await std::move(spawning_a);
    Coro<std::pair<std::string, std::string>> talking = a.communicate();
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, "");
    EXPECT_EQ(a.returncode(), 0);
    // stdout to /dev/null: nothing reaches us, and there is no pipe to read.
    Coro<Process> spawning_b = shell("echo hidden; echo shown >&2", {.out = DEVNULL, .err = PIPE});
    Process b = co_await std::move(spawning_b);
    EXPECT_FALSE(bool(b.out()));
    EXPECT_TRUE(bool(b.err()));
    Coro<std::pair<std::string, std::string>> talking_b = b.communicate();
    std::pair<std::string, std::string> result_b = co_await std::move(talking_b);
    EXPECT_EQ(result_b.first, "");
    EXPECT_EQ(result_b.second, "shown\n");
}

CORIO_TEST(Subprocess, StderrIntoStdoutAndLineByLine) {
    Coro<Process> spawning = shell("echo one; echo two >&2; echo three", {.out = PIPE, .err = STDOUT});
    Process p = co_await std::move(spawning);
    EXPECT_FALSE(bool(p.err()));
    std::vector<std::string> lines;
    while (true) {
        std::string line = co_await p.out().readline();
        if (line.empty()) break;
        lines.push_back(line);
    }
    EXPECT_EQ(lines, (std::vector<std::string>{"one\n", "two\n", "three\n"}));
    int code = co_await p.wait();
    EXPECT_EQ(code, 0);
}

CORIO_TEST(Subprocess, StdoutRedirectIsOnlyForStderr) {
    int before = open_fds();
    CO_CATCH(std::invalid_argument, rejected, exec({"true"}, {.in = PIPE, .out = STDOUT}));
    EXPECT_TRUE(rejected.has_value());
    EXPECT_EQ(open_fds(), before);
    EXPECT_TRUE(live_children().empty());
}

CORIO_TEST(Subprocess, CwdOption) {
    std::string dir = std::filesystem::temp_directory_path().string();
    Coro<Process> spawning = exec({"pwd"}, {.out = PIPE, .cwd = dir});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate();
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, std::filesystem::canonical(dir).string() + "\n");
    // A directory that does not exist: the spawn fails with ENOENT.
    int before = open_fds();
    CO_CATCH(std::system_error, missing, exec({"pwd"}, {.out = PIPE, .cwd = "/nonexistent/corio-dir"}));
    CO_ASSERT_TRUE(missing.has_value());
    EXPECT_EQ(missing->code().value(), ENOENT);
    EXPECT_EQ(open_fds(), before);
}

CORIO_TEST(Subprocess, EnvOptionReplacesTheEnvironment) {
    std::vector<std::string> env{"CORIO_GREETING=hello from env", "PATH=/usr/bin:/bin"};
    Coro<Process> spawning =
        exec({"/bin/sh", "-c", "echo \"$CORIO_GREETING\"; echo \"${HOME-unset}\""}, {.out = PIPE, .env = env});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate();
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, "hello from env\nunset\n");
    // Without .env the parent's environment is inherited.
    ::setenv("CORIO_TEST_INHERITED", "inherited", 1);
    Coro<Process> spawning_b = exec({"/bin/sh", "-c", "echo \"$CORIO_TEST_INHERITED\""}, {.out = PIPE});
    Process b = co_await std::move(spawning_b);
    Coro<std::pair<std::string, std::string>> talking_b = b.communicate();
    std::pair<std::string, std::string> result_b = co_await std::move(talking_b);
    ::unsetenv("CORIO_TEST_INHERITED");
    EXPECT_EQ(result_b.first, "inherited\n");
}

CORIO_TEST(Subprocess, MissingProgramIsASystemErrorAndLeaksNothing) {
    int before = open_fds();
    CO_CATCH(std::system_error, absolute, exec({"/nonexistent/program"}, {.in = PIPE, .out = PIPE, .err = PIPE}));
    CO_ASSERT_TRUE(absolute.has_value());
    EXPECT_EQ(absolute->code().value(), ENOENT);
    CO_CATCH(std::system_error, on_path, exec({"corio-no-such-program-on-path"}, {.out = PIPE}));
    CO_ASSERT_TRUE(on_path.has_value());
    EXPECT_EQ(on_path->code().value(), ENOENT);
    CO_CATCH(std::system_error, in_dir, exec({"corio-nowhere"}, {.cwd = "/tmp", .env = std::vector<std::string>{}}));
    CO_ASSERT_TRUE(in_dir.has_value());
    EXPECT_NE(std::string(in_dir->what()).find("in '/tmp'"), std::string::npos) << in_dir->what();
    CO_CATCH(std::system_error, closed_fd, exec({"true"}, {.pass_fds = {987}}));  // not open
    CO_ASSERT_TRUE(closed_fd.has_value());
    EXPECT_NE(std::string(closed_fd->what()).find("pass_fds holds fd 987"), std::string::npos) << closed_fd->what();
    EXPECT_EQ(open_fds(), before);
    EXPECT_TRUE(live_children().empty());
    CO_CATCH(std::invalid_argument, empty, exec({}));
    EXPECT_TRUE(empty.has_value());
}

// Popen's ValueError "embedded null byte": a NUL in the argv, the shell command, the environment
// or the directory would cut the C string short and run something else ("safe\0; rm -rf ~").
CORIO_TEST(Subprocess, EmbeddedNullByteIsRefusedBeforeAnythingRuns) {
    using namespace std::string_literals;
    int before = open_fds();
    CO_CATCH(std::invalid_argument, in_argv, exec({"/bin/echo", "safe\0; false"s}, {.out = PIPE}));
    CO_CATCH(std::invalid_argument, in_program, exec({"/bin/true\0x"s}));
    Coro<Process> shell = create_subprocess_shell("echo one\0echo two"s, {.out = PIPE});
    CO_CATCH(std::invalid_argument, in_command, std::move(shell));
    CO_CATCH(std::invalid_argument, in_env, exec({"/bin/true"}, {.env = std::vector<std::string>{"A=x\0B=y"s}}));
    CO_CATCH(std::invalid_argument, in_cwd, exec({"/bin/true"}, {.cwd = "/tmp\0/etc"s}));
    for (auto* e : {&in_argv, &in_program, &in_command, &in_env, &in_cwd}) {
        CO_ASSERT_TRUE(e->has_value());
        EXPECT_NE(std::string((*e)->what()).find("embedded null byte"), std::string::npos) << (*e)->what();
    }
    EXPECT_EQ(open_fds(), before);
    EXPECT_TRUE(live_children().empty());
}

CORIO_TEST(Subprocess, LargeOutputAndInputThroughPipes) {
    // More than a pipe's buffer both ways.
    Coro<Process> spawning_a = exec({"head", "-c", "3000000", "/dev/zero"}, {.out = PIPE});
    Process a = co_await std::move(spawning_a);
    Coro<std::pair<std::string, std::string>> talking_a = a.communicate();
    std::pair<std::string, std::string> out = co_await std::move(talking_a);
    EXPECT_EQ(out.first.size(), 3000000u);
    EXPECT_EQ(out.first.find_first_not_of('\0'), std::string::npos);

    std::string input(2 * 1024 * 1024 + 17, 'i');
    Coro<Process> spawning_b = exec({"wc", "-c"}, {.in = PIPE, .out = PIPE});
    Process b = co_await std::move(spawning_b);
    Coro<std::pair<std::string, std::string>> talking_b = b.communicate(input);
    std::pair<std::string, std::string> counted = co_await std::move(talking_b);
    EXPECT_EQ(std::stoul(counted.first), input.size());
}

CORIO_TEST(Subprocess, ChildThatIgnoresItsInputDoesNotBreakCommunicate) {
    // The child exits without reading: feeding it is EPIPE, which communicate() ignores (as
    // asyncio does), and the parent does not die of SIGPIPE.
    std::string input(4 * 1024 * 1024, 'x');
    Coro<Process> spawning = exec({"true"}, {.in = PIPE, .out = PIPE});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate(input);
    std::pair<std::string, std::string> result = co_await std::move(talking);
    EXPECT_EQ(result.first, "");
    EXPECT_EQ(p.returncode(), 0);
}

CORIO_TEST(Subprocess, InteractiveLineByLine) {
    Coro<Process> spawning = exec({"cat"}, {.in = PIPE, .out = PIPE});
    Process p = co_await std::move(spawning);
    for (int i = 0; i < 20; ++i) {
        std::string line = "line " + std::to_string(i) + "\n";
        p.in().write(line);
        co_await p.in().drain();
        std::string echoed = co_await p.out().readline();
        EXPECT_EQ(echoed, line);
    }
    p.in().write_eof();  // a pipe: closing our end is how cat sees EOF
    std::string rest = co_await p.out().read(-1);
    EXPECT_EQ(rest, "");
    int code = co_await p.wait();
    EXPECT_EQ(code, 0);
}

CORIO_TEST(Subprocess, TwoHundredQuickChildrenLeaveNoZombiesAndNoPipes) {
    int before = open_fds();
    int ok = 0;
    auto one = [&](int i) -> Coro<> {
        Coro<Process> spawning = exec({"/bin/echo", std::to_string(i)}, {.in = DEVNULL, .out = PIPE, .err = PIPE});
        Process p = co_await std::move(spawning);
        Coro<std::pair<std::string, std::string>> talking = p.communicate();
        std::pair<std::string, std::string> result = co_await std::move(talking);
        if (result.first == std::to_string(i) + "\n" && p.returncode() == 0) ++ok;
    };
    auto batch = [&](int first) -> Coro<> {
        auto spawn_all = [&](TaskGroup& tg) -> Coro<> {
            for (int i = first; i < first + 20; ++i) tg.create_task(one(i));
            co_return;
        };
        Coro<> group = task_group(spawn_all);
        co_await std::move(group);
    };
    for (int first = 0; first < 200; first += 20) {
        Coro<> b = batch(first);
        co_await std::move(b);
    }
    EXPECT_EQ(ok, 200);
    co_await settle();
    EXPECT_EQ(open_fds(), before) << "pipes or pidfds leaked";
    EXPECT_TRUE(live_children().empty());
    int status;
    errno = 0;
    EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD) << "a child is still there to be reaped";
}

CORIO_TEST(Subprocess, ReturncodeWithoutWaitReapsTheChild) {
    Coro<Process> spawning = exec({"true"}, {.out = PIPE});
    Process p = co_await std::move(spawning);
    std::string out = co_await p.out().read(-1);  // EOF: the child has exited, or is about to
    EXPECT_EQ(out, "");
    // Poll returncode() (no wait()): it reaps the child by itself once it has exited.
    for (int i = 0; i < 500 && !p.returncode(); ++i) co_await sleep(10ms);
    EXPECT_EQ(p.returncode(), 0);
    EXPECT_TRUE(live_children().empty());
}

CORIO_TEST(Subprocess, DroppedProcessIsStillReaped) {
    int pid = -1;
    std::optional<std::pair<char, unsigned long long>> stat;
    {
        Coro<Process> spawning = exec({"sleep", "0.2"}, {.out = PIPE});
        Process p = co_await std::move(spawning);
        pid = p.pid();
        stat = proc_stat(pid);
        CO_ASSERT_TRUE(stat.has_value());
    }  // dropped while the child runs
    // Waiting for an external process: poll in real time, bounded at 5 s.
    bool reaped = false;
    for (int i = 0; i < 100 && !reaped; ++i) {
        auto now = proc_stat(pid);
        reaped = !now || now->second != stat->second;  // gone (or the pid reused by another)
        if (!reaped) co_await sleep(50ms);
    }
    EXPECT_TRUE(reaped) << "child " << pid << " is still there (state " << proc_stat(pid).value_or(std::make_pair('?', 0ull)).first << ")";
}

CORIO_TEST(Subprocess, DroppedFinishedProcessIsReapedAtOnce) {
    int pid = -1;
    {
        Coro<Process> spawning = exec({"true"}, {.out = PIPE});
        Process p = co_await std::move(spawning);
        pid = p.pid();
        std::string out = co_await p.out().read(-1);
        // Let it become a zombie without reaping it.
        for (int i = 0; i < 500; ++i) {
            auto s = proc_stat(pid);
            if (!s || s->first == 'Z') break;
            co_await sleep(10ms);
        }
    }
    EXPECT_FALSE(proc_stat(pid).has_value()) << "the dropped Process left a zombie";
    EXPECT_TRUE(live_children().empty());
}

CORIO_TEST(Subprocess, CancelledWaitLeavesNothingBehind) {
    std::size_t ops = get_running_loop().backend().pending();
    Coro<Process> spawning = exec({"sleep", "100"});
    Process p = co_await std::move(spawning);
    Coro<int> waiting_coro = p.wait();
    Task<int> waiting = create_task(std::move(waiting_coro));
    co_await sleep(0ms);
    co_await sleep(0ms);
    EXPECT_FALSE(waiting.done());
    waiting.cancel();
    CO_CATCH(CancelledError, cancelled, waiting);
    EXPECT_TRUE(cancelled.has_value());
    EXPECT_EQ(get_running_loop().backend().pending(), ops);
    p.kill();
    int code = co_await p.wait();
    EXPECT_EQ(code, -SIGKILL);
}

CORIO_TEST(Subprocess, WaitForTimesOutOnASlowChild) {
    corio::testing::MockClock clock;  // the timeout fires as soon as nothing else is ready
    Coro<Process> spawning = exec({"sleep", "100"});
    Process p = co_await std::move(spawning);
    Coro<int> limited = wait_for(p.wait(), 5s);
    CO_CATCH(TimeoutError, timed_out, std::move(limited));
    EXPECT_TRUE(timed_out.has_value());
    EXPECT_FALSE(p.returncode().has_value());
    p.terminate();
    int code = co_await p.wait();
    EXPECT_EQ(code, -SIGTERM);
}

CORIO_TEST(Subprocess, TimedOutCommunicateLeavesNoTaskBehind) {
    corio::testing::MockClock clock;
    Coro<Process> spawning = exec({"sleep", "100"}, {.in = PIPE, .out = PIPE, .err = PIPE});
    Process p = co_await std::move(spawning);
    Coro<std::pair<std::string, std::string>> talking = p.communicate("input");
    Coro<std::pair<std::string, std::string>> limited = wait_for(std::move(talking), 1s);
    CO_CATCH(TimeoutError, timed_out, std::move(limited));
    EXPECT_TRUE(timed_out.has_value());
    // asyncio's communicate() is a gather: cancelling it cancels the readers too. Nothing may
    // go on reading the child's pipes behind our back.
    std::size_t tasks = all_tasks().size();
    p.kill();
    int code = co_await p.wait();
    EXPECT_EQ(code, -SIGKILL);
    co_await settle();
    EXPECT_EQ(tasks, 1u);
    std::string rest = co_await p.out().read(-1);
    EXPECT_EQ(rest, "");
}

CORIO_TEST(Subprocess, ZeroStreamLimitIsRejectedWithoutLeaks) {
    std::set<int> before = open_fd_set();
    CO_CATCH(std::invalid_argument, rejected, exec({"true"}, {.out = PIPE, .limit = 0}));
    EXPECT_TRUE(rejected.has_value());
    co_await settle();
    std::set<int> after = open_fd_set();
    // Reap whatever child the failed call may have started, whatever the outcome.
    for (int pid : live_children()) {
        int status;
        ::waitpid(pid, &status, 0);
    }
    // Whatever leaked is closed, so that the rest of the suite runs clean; the test fails.
    for (int fd : after)
        if (!before.count(fd)) ::close(fd);
    EXPECT_EQ(after, before);
}

// A daemon has no stdin or stdout: pipe2 then hands out 0 and 1, and the stderr pipe's child end
// at 1 was replaced by the /dev/null that .out asked for before it was dup'ed onto 2: the
// child's stderr was lost.
CORIO_TEST(SubprocessPipes, AParentWithoutStdinAndStdoutStillGetsTheChildsStderr) {
    const int saved_in = ::fcntl(0, F_DUPFD_CLOEXEC, 10);
    const int saved_out = ::fcntl(1, F_DUPFD_CLOEXEC, 10);
    CO_ASSERT_GE(saved_in, 0);
    CO_ASSERT_GE(saved_out, 0);
    ::close(0);
    ::close(1);
    std::exception_ptr failure;
    std::string err;
    try {
        SubprocessOptions options{.out = DEVNULL, .err = PIPE};
        Coro<Process> spawning = create_subprocess_exec({"sh", "-c", "echo to-stderr >&2; echo to-stdout"}, options);
        Process p = co_await std::move(spawning);
        Coro<std::pair<std::string, std::string>> talking = p.communicate();
        std::pair<std::string, std::string> output = co_await std::move(talking);
        err = output.second;
    } catch (...) {
        failure = std::current_exception();
    }
    ::dup2(saved_in, 0);
    ::dup2(saved_out, 1);
    ::close(saved_in);
    ::close(saved_out);
    if (failure) std::rethrow_exception(failure);
    EXPECT_EQ(err, "to-stderr\n");
}
