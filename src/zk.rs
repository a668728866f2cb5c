//! ZooKeeper adapter: four-letter words and the ensemble health verdict. (Skeleton.)
