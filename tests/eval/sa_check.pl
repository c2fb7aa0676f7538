#!/usr/bin/perl
# sa_check.pl - SpamAssassin itself, as `spamassassin -L` runs it, kept
# running over many messages (tests/eval/run.py starts one per job).
#
#   sa_check.pl PREFS [--cf LINE]... < paths
#
# Builds one Mail::SpamAssassin the way /usr/bin/spamassassin does
# (default rule and site directories, PREFS as user_prefs, local tests
# only, the --cf lines as post_config_text, test mode: no AWL, no
# auto-learning), compiles the rules once, then reads one message path a
# line and answers one JSON line per message:
#
#   {"path": P, "score": S, "tests": [...], "subtests": [...]}
#
# or {"path": P, "error": "..."}. "tests" are the rules that hit (scored
# or not), "subtests" the "__" sub-rules that hit, each once.
use strict;
use warnings;

use JSON::PP;
use Mail::SpamAssassin;

my $prefs = shift @ARGV or die "usage: sa_check.pl PREFS [--cf LINE]...\n";
my @cf;
while (@ARGV) {
	my $opt = shift @ARGV;
	die "sa_check.pl: unknown option $opt\n" unless $opt eq '--cf' && @ARGV;
	push @cf, shift @ARGV;
}

my $sa = Mail::SpamAssassin->new({
	userprefs_filename => $prefs,
	local_tests_only => 1,
	dont_copy_prefs => 1,
	post_config_text => join("\n", @cf) . "\n",
	require_rules => 1,
	DEF_RULES_DIR => '/usr/share/spamassassin',
	LOCAL_RULES_DIR => '/etc/spamassassin',
});
$sa->init(1);
# What `spamassassin -t` does: no long-term memory between messages.
$sa->{conf}->{use_auto_welcomelist} = 0;
$sa->{conf}->{bayes_auto_learn} = 0;

my $json = JSON::PP->new->canonical;
$| = 1;
while (my $path = <STDIN>) {
	chomp $path;
	next if $path eq '';
	my %out = (path => $path);
	eval {
		open(my $fh, '<', $path) or die "cannot read: $!\n";
		binmode $fh;
		my @lines = <$fh>;
		close $fh;
		my $mail = $sa->parse(\@lines);
		my $status = $sa->check($mail);
		$out{score} = $status->get_score() + 0;
		$out{tests} = [grep { $_ ne '' }
		    split(/,/, $status->get_names_of_tests_hit())];
		my %seen;
		$out{subtests} = [grep { $_ ne '' && !$seen{$_}++ }
		    split(/,/, $status->get_names_of_subtests_hit())];
		$status->finish();
		$mail->finish();
		1;
	} or do {
		my $err = $@ || 'unknown error';
		$err =~ s/\s+$//;
		%out = (path => $path, error => $err);
	};
	print $json->encode(\%out), "\n";
}
$sa->finish();
