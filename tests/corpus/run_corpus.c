/*
 * run_corpus: replays a seed corpus through a fuzz target without a fuzzing engine.
 *
 *   corpus_<target> DIR          every file of DIR through LLVMFuzzerTestOneInput; each
 *                                outcome must be the one DIR/EXPECTED documents
 *   corpus_<target> --list DIR   print "FILE OUTCOME" lines, to write EXPECTED from
 *
 * Linked with one of tools/fuzz-targets/fuzz_*.c and fuzz_common.c, so what runs is the
 * fuzz target itself: a target that crashes or aborts on a corpus file fails this test as it
 * would fail the fuzzer. Every file must be listed in EXPECTED (and every listed file must
 * exist), so a corpus cannot grow entries whose meaning nobody wrote down. crash-* files
 * are findings: EXPECTED gives the outcome once the bug is fixed; until then each one fails
 * this test with outcome "crash(signal 6)", as it crashes the fuzzer.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Defined only by the targets that need set-up (libFuzzer calls it when present). */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

#define MAX_EXPECT 512

struct expect {
	char file[256];
	char outcome[FZ_OUTCOME_MAX];
	int seen;
};

static struct expect ex[MAX_EXPECT];
static int nex;

static int load_expected(const char *dir)
{
	char path[4096], line[512];
	snprintf(path, sizeof path, "%s/EXPECTED", dir);
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno));
		return -1;
	}
	int ln = 0;
	while (fgets(line, sizeof line, f)) {
		ln++;
		if (line[0] == '#' || line[strspn(line, " \t\r\n")] == '\0')
			continue;
		/* FILE, blanks, then the outcome: the rest of the line (manifest fields hold blanks) */
		line[strcspn(line, "\r\n")] = '\0';
		int fe = 0, os = 0;
		if (nex == MAX_EXPECT || sscanf(line, "%255s%n %n", ex[nex].file, &fe, &os) != 1 || os <= fe ||
		    !line[os] || strlen(line + os) >= sizeof ex[nex].outcome) {
			fprintf(stderr, "%s:%d: not \"FILE OUTCOME\" (or more than %d entries)\n", path, ln, MAX_EXPECT);
			fclose(f);
			return -1;
		}
		snprintf(ex[nex].outcome, sizeof ex[nex].outcome, "%s", line + os);
		nex++;
	}
	fclose(f);
	return 0;
}

static struct expect *find(const char *file)
{
	for (int i = 0; i < nex; i++)
		if (strcmp(ex[i].file, file) == 0)
			return &ex[i];
	return NULL;
}

static uint8_t *read_all(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	uint8_t *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			uint8_t *nb = realloc(buf, cap *= 2);
			if (!nb)
				free(buf);
			buf = nb;
		}
	}
	fclose(f);
	*size = n;
	return buf;
}

/* crash-* files are findings (a fuzz target's artifacts, named as libFuzzer names them):
 * they run last, each in a child process (run_isolated). */
static int crash_last(const struct dirent **a, const struct dirent **b)
{
	int ca = strncmp((*a)->d_name, "crash-", 6) == 0, cb = strncmp((*b)->d_name, "crash-", 6) == 0;
	return ca != cb ? ca - cb : strcmp((*a)->d_name, (*b)->d_name);
}

static void run_here(const uint8_t *data, size_t size)
{
	fz_outcome[0] = '\0';
	LLVMFuzzerTestOneInput(data, size);
}

/* A finding not fixed yet aborts the target: run it in a child, so that the remaining
 * findings are checked too and each one that still crashes is reported as such. The child
 * starts from the parent's state (the fuzz_pipeline engine included), as the next input
 * of a fuzzing run would. */
static void run_isolated(const uint8_t *data, size_t size)
{
	int fd[2];
	fflush(stdout);
	fflush(stderr);
	pid_t pid = pipe(fd) == 0 ? fork() : -1;
	if (pid == 0) {
		close(fd[0]);
		run_here(data, size);
		ssize_t w = write(fd[1], fz_outcome, strlen(fz_outcome));
		_exit(w < 0 ? 3 : 0);
	}
	if (pid < 0) {
		snprintf(fz_outcome, sizeof fz_outcome, "(cannot fork: %s)", strerror(errno));
		return;
	}
	close(fd[1]);
	ssize_t n = read(fd[0], fz_outcome, sizeof fz_outcome - 1);
	close(fd[0]);
	fz_outcome[n > 0 ? n : 0] = '\0';
	int status = 0;
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		snprintf(fz_outcome, sizeof fz_outcome, "crash(signal %d)", WTERMSIG(status));
	else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		snprintf(fz_outcome, sizeof fz_outcome, "crash(exit %d)", WEXITSTATUS(status));
}

/* Corpus files are everything but the documentation. */
static int is_input(const struct dirent *d)
{
	return d->d_name[0] != '.' && strcmp(d->d_name, "EXPECTED") != 0 && strcmp(d->d_name, "README.md") != 0;
}

int main(int argc, char **argv)
{
	int list = argc == 3 && strcmp(argv[1], "--list") == 0;
	if (argc != 2 && !list) {
		fprintf(stderr, "usage: %s [--list] CORPUS_DIR\n", argv[0]);
		return 2;
	}
	/* Line buffered: the results so far must reach the log even when the target aborts. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	const char *dir = argv[argc - 1];
	if (!list && load_expected(dir) != 0)
		return 2;
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	struct dirent **names;
	int n = scandir(dir, &names, is_input, crash_last);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", dir, strerror(errno));
		return 2;
	}
	int bad = 0, ran = 0, missing = 0;
	for (int i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
		struct stat st;
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(names[i]);
			continue;
		}
		size_t size;
		uint8_t *data = read_all(path, &size);
		if (!data) {
			fprintf(stderr, "%s: cannot read\n", path);
			return 2;
		}
		/* Named before running: if the target dies, the last line says on what. */
		fprintf(stderr, "running %s\n", names[i]->d_name);
		if (strncmp(names[i]->d_name, "crash-", 6) == 0)
			run_isolated(data, size);
		else
			run_here(data, size);
		free(data);
		ran++;
		if (list) {
			printf("%-40s %s\n", names[i]->d_name, fz_outcome);
		} else {
			struct expect *e = find(names[i]->d_name);
			if (!e) {
				printf("FAIL %-40s %s (not documented in EXPECTED)\n", names[i]->d_name, fz_outcome);
				bad++;
			} else {
				e->seen = 1;
				int ok = strcmp(e->outcome, fz_outcome) == 0;
				printf("%s %-40s %s%s%s\n", ok ? "ok  " : "FAIL", names[i]->d_name, fz_outcome,
				       ok ? "" : ", expected ", ok ? "" : e->outcome);
				bad += !ok;
			}
		}
		free(names[i]);
	}
	free(names);
	for (int i = 0; i < nex; i++)
		if (!ex[i].seen) {
			printf("FAIL %-40s listed in EXPECTED but not in %s\n", ex[i].file, dir);
			missing++;
		}
	if (!list)
		printf("%s: %d files, %d as documented, %d not; %d listed but absent\n", dir, ran, ran - bad, bad, missing);
	if (ran == 0) {
		printf("%s: empty corpus\n", dir);
		return 1;
	}
	return bad || missing ? 1 : 0;
}
