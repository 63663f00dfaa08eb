// Running a scenario in a forked child, for what ends or may end the process (a second Ctrl-C,
// the harness aborting a run): the parent keeps its own state and sees how the child ended.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace corio_test {

// What a forked child wrote to its pipe, and how it ended.
struct ChildOutcome {
    std::string output;
    int status = 0;
    bool finished = false;  // false: it overran the bound and was killed
};

// Runs `body(fd)` in a forked child that writes its observations to `fd`, then _exit(0)s; the
// parent reads until the pipe closes, for at most 30 s (a hang fails, it does not hang us).
inline ChildOutcome in_child(const std::function<void(int)>& body) {
    ChildOutcome out;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return out;
    std::fflush(stdout);
    std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(p[0]);
        try {
            body(p[1]);
        } catch (...) {
            ::_exit(99);
        }
        ::_exit(0);
    }
    ::close(p[1]);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    char buf[256];
    out.finished = true;
    for (;;) {
        pollfd pfd{p[0], POLLIN, 0};
        using std::chrono::milliseconds;
        const auto left = std::chrono::duration_cast<milliseconds>(give_up - std::chrono::steady_clock::now());
        if (left.count() <= 0 || ::poll(&pfd, 1, int(left.count())) == 0) {
            out.finished = false;
            ::kill(pid, SIGKILL);
            break;
        }
        const ssize_t n = ::read(p[0], buf, sizeof buf);
        if (n <= 0) break;
        out.output.append(buf, std::size_t(n));
    }
    ::close(p[0]);
    ::waitpid(pid, &out.status, 0);
    return out;
}

inline void say(int fd, const std::string& s) { (void)!::write(fd, s.data(), s.size()); }

// This process's children not reaped yet (running or zombies), from /proc.
inline std::vector<int> live_children() {
    std::vector<int> out;
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream in(task.path() / "children");
        int pid;
        while (in >> pid) out.push_back(pid);
    }
    return out;
}

}  // namespace corio_test
