// asyncio's subprocesses: create_subprocess_exec / create_subprocess_shell and Process.
//
//   std::vector<std::string> argv{"python3", "-c", "print(input().upper())"};  // a named local
//   auto p = co_await corio::create_subprocess_exec(argv, {.in = corio::PIPE, .out = corio::PIPE});
//   auto [out, err] = co_await p.communicate("hello\n");   // out == "HELLO\n"
//   int code = co_await p.wait();                           // -N when signal N ended it
//
// Children are always reaped: a Process dropped while its child runs hands the child to a
// reaper, so none is left a zombie. Exit is observed through a pidfd (no SIGCHLD handler).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "corio/coro.hpp"
#include "corio/streams.hpp"

namespace corio {

enum class Redirect : std::uint8_t { Inherit, Pipe, DevNull, Stdout };
// C's stdin/stdout are macros, hence the options' short names `.in`, `.out`, `.err`.
inline constexpr Redirect PIPE = Redirect::Pipe;
inline constexpr Redirect DEVNULL = Redirect::DevNull;
inline constexpr Redirect STDOUT = Redirect::Stdout;  // for .err: into the same place as .out

struct SubprocessOptions {
    Redirect in = Redirect::Inherit;
    Redirect out = Redirect::Inherit;
    Redirect err = Redirect::Inherit;
    std::optional<std::string> cwd{};
    // "NAME=value" entries; the parent's when not given (an empty vector: an empty environment).
    std::optional<std::vector<std::string>> env{};
    // Popen's pass_fds: open fds the child keeps, at the same numbers (every other fd above 2
    // is closed in the child, as with close_fds=True).
    std::vector<int> pass_fds{};
    std::size_t limit = default_stream_limit;
};

namespace detail {
struct ProcessState;
}

class Process {
public:
    Process() = default;
    explicit Process(std::shared_ptr<detail::ProcessState> s) : s_(std::move(s)) {}

    int pid() const noexcept;
    // The exit code, -N for signal N, or nothing while the child runs.
    std::optional<int> returncode() const noexcept;

    StreamWriter& in();   // with .in = PIPE
    StreamReader& out();  // with .out = PIPE
    StreamReader& err();  // with .err = PIPE

    Coro<int> wait();
    // Sends `input` (then closes stdin), reads stdout and stderr to the end, waits for exit.
    Coro<std::pair<std::string, std::string>> communicate(std::string input = {});

    // Throw ProcessLookupError once the child has been reaped (asyncio's too).
    void send_signal(int sig);
    void terminate();  // SIGTERM
    void kill();       // SIGKILL

private:
    detail::ProcessState& state() const;  // std::logic_error for an empty Process
    static Coro<std::pair<std::string, std::string>> communicate_with(std::shared_ptr<detail::ProcessState> s,
                                                                      std::string input);
    std::shared_ptr<detail::ProcessState> s_;
};

Coro<Process> create_subprocess_exec(std::vector<std::string> argv, SubprocessOptions options = {});
// Runs `command` with /bin/sh -c.
Coro<Process> create_subprocess_shell(std::string command, SubprocessOptions options = {});

}  // namespace corio
