/* The pod sandbox's process for the real kubelet's containerd (tests/support/realkubelet.py).
 *
 * It holds the pod's namespaces open and does nothing else: it sleeps until a signal comes,
 * reaps any child handed to it (it is PID 1 when the pod shares its PID namespace), and exits
 * cleanly on SIGINT or SIGTERM. Built with `gcc -static` into a FROM scratch image, so no
 * registry is needed for the sandbox image.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction on_stop = {.sa_handler = stop};
    struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigemptyset(&on_stop.sa_mask);
    sigemptyset(&on_child.sa_mask);
    if (sigaction(SIGINT, &on_stop, NULL) < 0 || sigaction(SIGTERM, &on_stop, NULL) < 0 ||
        sigaction(SIGCHLD, &on_child, NULL) < 0) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
