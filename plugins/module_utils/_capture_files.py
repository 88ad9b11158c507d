# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Private to hoptrace.k8s: the capture directory of the capture module; not a public API.
"""The capture module's directory: created private, and cleaned of old captures (node side, stdlib only).

``prepare_directory`` creates the capture directory mode 0700, or checks that an existing one is a
directory of the user running the module and not shared (``/tmp`` itself is refused).
``prune_files`` removes the files of old captures (``_tcpdump.prune`` decides which: recorded process
gone and deadline long past, or no state file and an old newest file), logs every removal on the node
and warns of what it could not remove; check mode removes nothing. ``prune_before_start`` does that
before a start (never for the captures being started), ``absent_older`` for ``state=absent`` with
``older_than`` and ids, ``clean_directory`` for ``state=absent`` with ``older_than`` and no ids.
Stopping captures is ``_capture_procs``'s job.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type  # noqa: UP001 - ansible-test boilerplate

import os
import stat
import time

from ansible_collections.hoptrace.k8s.plugins.module_utils import _tcpdump as td
from ansible_collections.hoptrace.k8s.plugins.module_utils import _validate as v
from ansible_collections.hoptrace.k8s.plugins.module_utils._tcpdump import CaptureFailed


def prune_files(module, directory, older_than=None, only=None, exclude=()):
    """td.prune in ``directory`` (nothing removed in check mode), logged; its result (``skipped`` is the caller's)."""
    done = td.prune(directory, v.is_id, time.time(), exclude=exclude, older_than=older_than, only=only,
                    dry_run=module.check_mode)
    for error in done['errors']:
        module.warn('could not remove %s in %s' % (error, directory))
    if done['removed'] and not module.check_mode:
        module.log('hoptrace.k8s.capture removed %d files of %d old captures in %s (%s): %s' % (
            len(done['removed']), len(done['captures']), directory,
            '; '.join('%s: %s' % item for item in sorted(done['captures'].items())), ' '.join(done['removed'])))
    return done


def prepare_directory(directory):
    """Create the private capture directory (0700) or check an existing one is ours and private."""
    if not os.path.lexists(directory):
        os.makedirs(directory, 0o700)
    st = os.lstat(directory)
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise ValueError('%s is not a directory: remove it or choose another directory' % directory)
    if st.st_uid != os.geteuid():
        raise ValueError('%s belongs to uid %d, not to the user running the module (%d): remove it or choose another directory'
                         % (directory, st.st_uid, os.geteuid()))
    if st.st_mode & (stat.S_ISVTX | stat.S_IWOTH):
        # a shared folder such as /tmp or /var/tmp itself: making it 0700 would break it for everybody else
        raise ValueError('%s is a shared directory (mode %04o): give a directory of its own, such as /var/tmp/hoptrace'
                         % (directory, stat.S_IMODE(st.st_mode)))
    if st.st_mode & 0o077:
        os.chmod(directory, 0o700)


def size(path):
    """Size of the file at ``path`` in bytes, 0 when it is missing."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def absent_older(module, ps, node):
    """With older_than: remove the files of the captures of ``ps`` that are older and not running."""
    results = list(ps)
    valid = [p for p in ps if not isinstance(p, CaptureFailed)]
    if not valid:
        return results
    directory, older_than = valid[0]['directory'], valid[0]['older_than']
    done = prune_files(module, directory, older_than=older_than, only=set(p['id'] for p in valid))
    if done['skipped']:
        raise ValueError(done['skipped'])
    for i, p in enumerate(ps):
        if isinstance(p, CaptureFailed):
            continue
        paths = td.paths(directory, p['id'])
        mine = [os.path.join(directory, name) for name in done['removed'] if td.split_name(name, v.is_id)[0] == p['id']]
        results[i] = {'id': p['id'], 'file': paths['file'], 'removed': mine, 'changed': bool(mine)}
        if not mine and any(os.path.lexists(paths[k]) for k in ('file', 'log', 'state')):
            results[i]['msg'] = ('kept capture %s: it may still be running, or its files are not older than %d s'
                                 % (p['id'], older_than))
    return results


def clean_directory(module, directory, older_than):
    """state=absent with older_than and no ids: remove every old capture of ``directory`` (both checked);
    ends the module run (exit_json or fail_json)."""
    try:
        done = prune_files(module, directory, older_than=older_than)
    except OSError as exc:
        module.fail_json(msg='could not look for old capture files in %s: %s' % (directory, exc))
    if done['skipped']:
        module.fail_json(msg=done['skipped'], removed=[], changed=False)
    removed = [os.path.join(directory, name) for name in done['removed']]
    if done['errors']:
        module.fail_json(msg='could not remove %s in %s' % ('; '.join(done['errors']), directory),
                         removed=removed, changed=bool(removed))
    module.exit_json(changed=bool(removed), removed=removed)


def prune_before_start(module, ps):
    """Remove earlier runs' leftovers from the directory of this start; the file names removed."""
    valid = [p for p in ps if not isinstance(p, CaptureFailed)]
    if not valid:
        return []
    ids = set(p['id'] for p in valid) | set(c.get('id') for c in module.params.get('captures') or [])
    try:
        done = prune_files(module, valid[0]['directory'], exclude=ids)
    except OSError as exc:
        module.warn('could not look for old capture files in %s: %s' % (valid[0]['directory'], exc))
        return []
    if done['skipped']:
        module.warn(done['skipped'])
    return done['removed']
