% Runs the survey toolbox's DAIMC (DAIMC/newinit.m and DAIMC/DAIMC.m, unchanged) under GNU
% Octave on the conditions benchmarks/daimc_original.py exported, the way its driver
% DAIMC_clustering.m prepares them: each view's samples scaled to unit norm (NormalizeFea), the
% columns of missing samples set to zero, W_v = diag(presence), alpha = 1e-4, beta = 1e4, the
% legacy rand seed 6821. Saves each condition's consensus V (and the Octave k-means labels the
% driver would report) as <out>/V_<rate>_<fold>.mat.
%
% Environment: ORIGINAL (the toolbox checkout), DATA (folder with hw5.mat and
% hw5_percentDel_<rate>.mat), OUT, RATES ("[0.1 0.3]"), FOLDS ("1:10").
pkg load statistics   % kmeans
pkg load control      % lyap (DAIMC's Sylvester step)
original = getenv('ORIGINAL');
addpath(fullfile(original, 'DAIMC')); addpath(fullfile(original, 'utils'));
data = load(fullfile(getenv('DATA'), 'hw5.mat'));
settings.afa = 1e-4;
settings.beta = 1e4;
num_views = numel(data.X);
num_clusters = numel(unique(data.truth));
for rate = str2num(getenv('RATES'))
  masks = load(fullfile(getenv('DATA'), sprintf('hw5_percentDel_%g.mat', rate)));
  for fold = str2num(getenv('FOLDS'))
    rand('seed', 6821);
    presence = masks.folds{fold};
    views = cell(1, num_views); weights = cell(1, num_views);
    for v = 1:num_views
      scaled = NormalizeFea(data.X{v}', 0);          % [d, N], unit-norm columns
      scaled(:, presence(:, v) == 0) = 0;
      views{v} = scaled;
      weights{v} = diag(presence(:, v));
    end
    start = cputime;
    [U0, V0, B0] = newinit(views, weights, num_clusters, num_views);
    [U, V] = DAIMC(views, weights, U0, V0, B0, data.truth, num_clusters, num_views, settings);
    seconds = cputime - start;
    labels = kmeans(V, num_clusters);
    truth = data.truth;
    save('-mat7-binary', fullfile(getenv('OUT'), sprintf('V_%g_%d.mat', rate, fold)), ...
         'V', 'labels', 'truth', 'seconds');
    printf('done %g %d %.1f\n', rate, fold, seconds); fflush(stdout);
  end
end
