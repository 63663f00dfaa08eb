// Subprocesses: real children, real pipes.
#include <corio/subprocess.hpp>
#include <corio/testing.hpp>

#include <signal.h>

using namespace corio;

CORIO_TEST(Subprocess, CommunicateUppercasesThroughPython) {
    std::vector<std::string> argv{"python3", "-c", "print(input().upper())"};
    auto p = co_await create_subprocess_exec(argv, {.in = PIPE, .out = PIPE});
    auto [out, err] = co_await p.communicate("hello\n");
    EXPECT_EQ(out, "HELLO\n");
    EXPECT_EQ(err, "");
    int code = co_await p.wait();
    EXPECT_EQ(code, 0);
    EXPECT_EQ(p.returncode(), 0);
}

CORIO_TEST(Subprocess, ShellExitCodeAndStderr) {
    auto p = co_await create_subprocess_shell("echo oops >&2; exit 3", {.out = PIPE, .err = PIPE});
    auto [out, err] = co_await p.communicate();
    EXPECT_EQ(out, "");
    EXPECT_EQ(err, "oops\n");
    EXPECT_EQ(p.returncode(), 3);
}

CORIO_TEST(Subprocess, KilledChildReportsMinusSignal) {
    std::vector<std::string> argv{"sleep", "100"};
    auto p = co_await create_subprocess_exec(argv);
    p.kill();
    int code = co_await p.wait();
    EXPECT_EQ(code, -SIGKILL);
}

CORIO_TEST(Subprocess, MissingProgramIsASystemError) {
    std::vector<std::string> argv{"/nonexistent/program"};
    bool failed = false;
    try {
        co_await create_subprocess_exec(argv);
    } catch (const std::system_error& e) {
        failed = e.code().value() == ENOENT;
    }
    EXPECT_TRUE(failed);
}

CORIO_TEST(Subprocess, StderrIntoStdoutAndLineByLine) {
    auto p = co_await create_subprocess_shell("echo one; echo two >&2; echo three", {.out = PIPE, .err = STDOUT});
    std::vector<std::string> lines;
    while (true) {
        std::string line = co_await p.out().readline();
        if (line.empty()) break;
        lines.push_back(line);
    }
    EXPECT_EQ(lines, (std::vector<std::string>{"one\n", "two\n", "three\n"}));
    EXPECT_EQ(co_await p.wait(), 0);
}
