/* Keeping librnp's own stderr log out of kbuild's output (see internal.h). */
#include "internal.h"

#include <string.h>
#include <unistd.h>

void kb_rnp_quiet_begin(kb_rnp_quiet *q)
{
	q->saved = -1;
	q->tmp = NULL;
	fflush(stderr);
	if (!(q->tmp = tmpfile()))
		return;
	if ((q->saved = dup(STDERR_FILENO)) < 0 || dup2(fileno(q->tmp), STDERR_FILENO) < 0) {
		if (q->saved >= 0)
			close(q->saved);
		q->saved = -1;
		fclose(q->tmp);
		q->tmp = NULL;
	}
}

void kb_rnp_quiet_end(kb_rnp_quiet *q)
{
	if (!q->tmp)
		return;
	fflush(stderr);
	(void)dup2(q->saved, STDERR_FILENO);
	close(q->saved);
	char line[512];
	rewind(q->tmp);
	while (fgets(line, sizeof line, q->tmp)) {
		line[strcspn(line, "\n")] = 0;
		kb_debug("librnp: %s", line);
	}
	fclose(q->tmp);
}
