// C++-specific pitfalls of coroutines, each written the way that works.
#include <corio/corio.hpp>

#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

std::vector<std::string> greetings;

// [lambda-temporary]
// WRONG: the lambda is a temporary destroyed at the end of the statement, while the coroutine
// it returned runs on in the task and reads its captures through a dangling pointer. Capturing
// by value does not help: the captures live in the lambda object, not in the coroutine frame.
//
//     auto t = corio::create_task([&]() -> corio::Coro<> { co_await greet(name); }());
//     auto t = corio::create_task([name]() -> corio::Coro<> { co_await greet(name); }());
//
// RIGHT: a named coroutine function with by-value parameters: the frame owns its copies.
corio::Coro<> greet_later(std::string name, std::chrono::milliseconds delay) {
    co_await corio::sleep(delay);
    greetings.push_back("hello " + name);
}

corio::Coro<> spawn_greeter() {
    std::string name = "world";
    auto t = corio::create_task(greet_later(name, 10ms));
    name = "changed";  // the task has its own copy
    co_await t;
}
// [end lambda-temporary]

// [params]
// WRONG: a reference parameter (const std::string&, std::string_view, std::span...) refers to
// the caller's object, which may be gone before the coroutine runs or resumes:
//
//     corio::Coro<std::size_t> count_words(const std::string& text);
//     auto t = corio::create_task(count_words(load_text()));  // the temporary dies at once
//
// RIGHT: by value (the frame keeps a copy, or what was moved in) ...
corio::Coro<std::size_t> count_words(std::string text) {
    co_await corio::sleep(1ms);
    std::size_t words = 0;
    bool in_word = false;
    for (char c : text) {
        if (c != ' ' && !in_word) ++words;
        in_word = c != ' ';
    }
    co_return words;
}

// ... or, for an object that outlives the coroutine and is shared on purpose, a pointer, so
// that the lifetime question is visible at the call site.
corio::Coro<> add_count(std::vector<std::size_t>* counts, std::string text) {
    counts->push_back(co_await count_words(std::move(text)));
}
// [end params]

struct Transaction {
    std::vector<std::string>* log;
    corio::Coro<> execute(std::string sql) {
        co_await corio::sleep(1ms);
        if (sql.find("bad") != std::string::npos) throw std::runtime_error("syntax error");
        log->push_back(sql);
    }
    corio::Coro<> rollback() {
        co_await corio::sleep(1ms);
        log->push_back("ROLLBACK");
    }
    corio::Coro<> commit() {
        co_await corio::sleep(1ms);
        log->push_back("COMMIT");
    }
};

// [catch]
corio::Coro<> update(Transaction* tx, std::string sql) {
    std::exception_ptr error;
    try {
        co_await tx->execute(sql);
    } catch (...) {
        // co_await tx->rollback();   error: await expressions are not permitted in handlers
        error = std::current_exception();
    }
    if (error) {
        co_await tx->rollback();
        std::rethrow_exception(error);
    }
    co_await tx->commit();
}
// [end catch]

corio::Coro<std::string> fetch(std::string page) {
    co_await corio::sleep(1ms);
    co_return "<" + page + ">";
}

// [braced]
corio::Coro<std::vector<std::string>> two_pages() {
    // WRONG: co_await inside a braced initialiser; g++ and clang may evaluate the elements
    // out of order, and a frame destroyed while suspended in the middle leaks them:
    //     std::vector<std::string> pages{co_await fetch("a"), co_await fetch("b")};
    // RIGHT: one co_await per statement...
    std::string a = co_await fetch("a");
    std::string b = co_await fetch("b");
    std::vector<std::string> pages{a, b};
    // ...or both at once, when they are independent:
    auto both = co_await corio::gather(fetch("a"), fetch("b"));
    pages.push_back(std::get<0>(both) + std::get<1>(both));
    co_return pages;
}
// [end braced]

// [gxx12]
std::size_t length_of(std::string s) { return s.size(); }

corio::Coro<std::size_t> greet_all(std::string prefix) {
    // WRONG on g++ 12: a lambda that captures by value, written inside the co_await
    // expression, is destroyed twice (a double free of `prefix`; GCC PR 101367):
    //     co_await corio::task_group([prefix](corio::TaskGroup& tg) -> corio::Coro<> {...});
    //     co_await corio::to_thread([prefix] { return prefix.size(); });
    // RIGHT: bind it to a named local first, then co_await.
    auto body = [prefix](corio::TaskGroup& tg) -> corio::Coro<> {
        tg.create_task(greet_later(prefix + " a", 1ms));
        tg.create_task(greet_later(prefix + " b", 1ms));
        co_return;
    };
    co_await corio::task_group(body);
    auto measure = [prefix] { return prefix.size(); };
    std::size_t n = co_await corio::to_thread(measure);
    // Capturing by reference ([&]) inside the expression is fine, and so are plain values:
    std::size_t m = co_await corio::to_thread(length_of, prefix);
    co_return n + m;
}
// [end gxx12]

// [bindings]
corio::Coro<std::string> first_of_two() {
    // Bind a co_await result to a named variable, then take structured bindings of it:
    //     auto [a, b] = co_await corio::gather(...);   skips destructors on GCC 15 (PR 124584)
    auto results = co_await corio::gather(fetch("a"), fetch("b"));
    auto& [a, b] = results;
    co_return a + b;
}
// [end bindings]

corio::Coro<int> main_coro() {
    co_await spawn_greeter();
    std::vector<std::size_t> counts;
    co_await add_count(&counts, "the quick brown fox");
    std::vector<std::string> log;
    Transaction tx{&log};
    co_await update(&tx, "UPDATE ok");
    bool failed = false;
    try {
        co_await update(&tx, "UPDATE bad");
    } catch (const std::runtime_error&) {
        failed = true;
    }
    std::vector<std::string> pages = co_await two_pages();
    std::size_t n = co_await greet_all("hello");
    std::string ab = co_await first_of_two();
    bool ok = greetings.size() == 3 && greetings[0] == "hello world" && counts == std::vector<std::size_t>{4} &&
              failed && log == std::vector<std::string>{"UPDATE ok", "COMMIT", "ROLLBACK"} &&
              pages == std::vector<std::string>{"<a>", "<b>", "<a><b>"} && n == 10 && ab == "<a><b>";
    std::cout << (ok ? "all pitfalls avoided\n" : "something is off\n");
    co_return ok ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
